import { WriteBatcher } from './write-batcher';

/** The rules of the batcher alone; the container and metrics specs prove them against both databases. */
describe('WriteBatcher', () => {
  test("one turn's items are one batch; a key's second item waits for the next batch, behind its first", async () => {
    const batches: string[][] = [];
    const b = new WriteBatcher<{ key: string; v: string }>(async (items) => void batches.push(items.map((i) => i.v)), { keyOf: (i) => i.key });
    await Promise.all([b.add({ key: 'a', v: 'a1' }), b.add({ key: 'b', v: 'b1' }), b.add({ key: 'a', v: 'a2' }), b.add({ key: 'a', v: 'a3' }), b.add({ key: 'c', v: 'c1' })]);
    expect(batches).toEqual([['a1', 'b1', 'c1'], ['a2'], ['a3']]);
    expect(b.batches).toBe(3);
  });

  test('what is added while a batch is written goes out in the next one, after what that batch left behind', async () => {
    const batches: string[][] = [];
    let release!: () => void;
    const first = new Promise<void>((r) => (release = r));
    const b = new WriteBatcher<{ key: string; v: string }>(
      async (items) => {
        batches.push(items.map((i) => i.v));
        if (batches.length === 1) await first;
      },
      { keyOf: (i) => i.key, coalesceMs: 0 },
    );
    const done = [b.add({ key: 'a', v: 'a1' }), b.add({ key: 'a', v: 'a2' })];
    await new Promise((r) => setImmediate(r));
    done.push(b.add({ key: 'b', v: 'b1' }), b.add({ key: 'a', v: 'a3' }));
    release();
    await Promise.all(done);
    expect(batches).toEqual([['a1'], ['a2', 'b1'], ['a3']]);
  });

  test('at most maxItems per batch', async () => {
    const sizes: number[] = [];
    const b = new WriteBatcher<number>(async (items) => void sizes.push(items.length), { maxItems: 2 });
    await Promise.all([1, 2, 3, 4, 5].map((i) => b.add(i)));
    expect(sizes).toEqual([2, 2, 1]);
  });

  test("a failed batch whose error is an item's own is written again item by item: only the bad item fails", async () => {
    const calls: number[][] = [];
    const b = new WriteBatcher<number>(
      async (items) => {
        calls.push(items);
        if (items.includes(2)) throw new Error('refused: 2');
      },
      { isolate: (err) => (err as Error).message.startsWith('refused') },
    );
    const r = await Promise.allSettled([b.add(1), b.add(2), b.add(3)]);
    expect(r.map((x) => x.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(calls).toEqual([[1, 2, 3], [1], [2], [3]]);
  });

  test('a failed batch whose error is not an item’s (the database away) fails every item of that batch and no other', async () => {
    let down = true;
    const b = new WriteBatcher<number>(
      async () => {
        if (down) throw new Error('connection lost');
      },
      { isolate: (err) => !(err as Error).message.includes('connection lost') },
    );
    const r = await Promise.allSettled([b.add(1), b.add(2)]);
    expect(r.map((x) => x.status)).toEqual(['rejected', 'rejected']);
    down = false;
    await expect(b.add(3)).resolves.toBeUndefined();
  });

  test('flush waits for what was added before it', async () => {
    const written: number[] = [];
    const b = new WriteBatcher<number>(async (items) => void written.push(...items), { coalesceMs: 50 });
    await b.add(1); // the next add lands inside the coalescing window: it waits for the timer unless flushed
    void b.add(2);
    await b.flush();
    expect(written).toEqual([1, 2]);
  });
});
