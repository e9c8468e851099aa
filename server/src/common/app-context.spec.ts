import { AsyncLocalStorage } from 'node:async_hooks';
import { inAppContext } from './app-context';
import { currentRequestSlot, requestPrincipalMiddleware, setRequestPrincipal } from './request-principal';
import { TickBatcher } from './tick-batcher';
import { WriteBatcher } from './write-batcher';

/** What shared work sees of its callers' contexts: the principal slot and another store (as the request logger keeps one). */
const callerStore = new AsyncLocalStorage<string>();
const seen = () => ({ slot: currentRequestSlot(), caller: callerStore.getStore() });
const nobody = { slot: undefined, caller: undefined };

function asRequest<T>(name: string, fn: () => T): T {
  return callerStore.run(name, () => {
    let out!: T;
    requestPrincipalMiddleware({} as never, {} as never, () => {
      setRequestPrincipal({ userId: name, apiToken: { id: `t-${name}`, userId: name, projectId: `p-${name}`, role: 'operator' } } as never);
      out = fn();
    });
    return out;
  });
}

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
          return callerStore.getStore();
        }),
      ),
    );
    expect(writes).toEqual([nobody]);
    expect(after).toEqual(['a', 'b']);
  });
});
