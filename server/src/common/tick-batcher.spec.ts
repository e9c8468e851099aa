import { TickBatcher } from './tick-batcher';

describe('TickBatcher', () => {
  test('the gets of one turn cost one load per max keys; each caller gets its own value, a missing key undefined', async () => {
    const loads: number[][] = [];
    const b = new TickBatcher<number, { n: number }>(async (keys) => {
      loads.push(keys);
      return new Map(keys.filter((k) => k !== 3).map((k) => [k, { n: k * 10 }]));
    }, { max: 2, copy: (v) => ({ ...v }) });
    const [a, a2, c, missing, d] = await Promise.all([b.get(1), b.get(1), b.get(2), b.get(3), b.get(4)]);
    expect(loads).toEqual([[1, 2], [3, 4]]);
    expect([a, c, missing, d]).toEqual([{ n: 10 }, { n: 20 }, undefined, { n: 40 }]);
    expect(a2).toEqual(a);
    expect(a2).not.toBe(a); // copied: one caller's changes are not another's
    await b.get(5);
    expect(loads).toHaveLength(3); // a later turn: a new load
  });

  test('a failed load rejects the gets of its slice only', async () => {
    const b = new TickBatcher<number, number>(async (keys) => {
      if (keys.includes(1)) throw new Error('down');
      return new Map(keys.map((k) => [k, k]));
    }, { max: 1 });
    const [one, two] = await Promise.allSettled([b.get(1), b.get(2)]);
    expect(one).toMatchObject({ status: 'rejected', reason: new Error('down') });
    expect(two).toEqual({ status: 'fulfilled', value: 2 });
  });
});
