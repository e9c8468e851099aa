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

  test('keys asked for while the loads in flight run go together once one ends', async () => {
    const { loads, gates, b } = gatedBatcher({ maxInFlight: 1 });
    const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
    const first = b.get(1);
    await turn();
    expect(loads).toEqual([[1]]);
    // Three more turns' worth of gets while the first load is out: none of them starts a load.
    const later = [b.get(2)];
    await turn();
    later.push(b.get(3));
    await turn();
    later.push(b.get(4), b.get(2));
    await turn();
    expect(loads).toEqual([[1]]);
    gates.shift()!();
    expect(await first).toBe(1);
    await turn();
    await turn(); // the load's end schedules the next batch for the turn after it
    expect(loads).toEqual([[1], [2, 3, 4]]);
    gates.shift()!();
    expect(await Promise.all(later)).toEqual([2, 3, 4, 2]);
  });

  test('two loads in flight by default: the third batch waits for one of them', async () => {
    const { loads, gates, b } = gatedBatcher();
    const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
    const all = [b.get(1)];
    await turn();
    all.push(b.get(2));
    await turn();
    all.push(b.get(3));
    await turn();
    all.push(b.get(4));
    await turn();
    expect(loads).toEqual([[1], [2]]);
    gates.shift()!();
    await turn();
    await turn();
    expect(loads).toEqual([[1], [2], [3, 4]]);
    gates.splice(0).forEach((open) => open());
    expect(await Promise.all(all)).toEqual([1, 2, 3, 4]);
  });
});

/** A batcher whose loads answer (each key as its own value) only when their gate is opened, in order. */
function gatedBatcher(options?: ConstructorParameters<typeof TickBatcher<number, number>>[1]) {
  const loads: number[][] = [];
  const gates: (() => void)[] = [];
  const b = new TickBatcher<number, number>(
    (keys) =>
      new Promise((resolve) => {
        loads.push(keys);
        gates.push(() => resolve(new Map(keys.map((k) => [k, k]))));
      }),
    options,
  );
  return { loads, gates, b };
}
