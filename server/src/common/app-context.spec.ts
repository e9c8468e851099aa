import { asRequest, seenContext as seen } from '../testing/as-request';
import { inAppContext } from './app-context';
import { TickBatcher } from './tick-batcher';
import { WriteBatcher } from './write-batcher';

const nobody = { slot: undefined, caller: undefined };

describe('inAppContext: work done for many callers runs as none of them', () => {
  it('keeps the context of start-up, whichever context calls it', () => {
    expect(asRequest('a', () => [seen(), inAppContext(seen)])).toEqual([{ slot: expect.objectContaining({ principal: expect.objectContaining({ userId: 'a' }) }), caller: 'a' }, nobody]);
  });

  it('TickBatcher: the load for two requests of one turn sees neither', async () => {
    const loads: unknown[] = [];
    const b = new TickBatcher<string, string>(async (keys) => {
      loads.push(seen());
      return new Map(keys.map((k) => [k, k.toUpperCase()]));
    });
    const got = await Promise.all([asRequest('a', () => b.get('x')), asRequest('b', () => b.get('y'))]);
    expect(got).toEqual(['X', 'Y']);
    expect(loads).toEqual([nobody]);
  });

  it('WriteBatcher: the batch for two requests sees neither, and each caller resumes in its own request', async () => {
    const writes: unknown[] = [];
    const b = new WriteBatcher<string>(async () => {
      writes.push(seen());
    });
    const after = await Promise.all(
      ['a', 'b'].map((name) =>
        asRequest(name, async () => {
          await b.add(name);
          return seen().caller;
        }),
      ),
    );
    expect(writes).toEqual([nobody]);
    expect(after).toEqual(['a', 'b']);
  });
});
