import { AdmissionQueue, type AdmissionResult, type AdmissionTicket } from './admission';

/** Settles what the queue granted so far (its promises resolve on the microtask queue). */
const flush = (): Promise<void> => new Promise((r) => jest.requireActual<typeof import('timers')>('timers').setImmediate(r));

function track(q: AdmissionQueue, label: string, log: string[]): { cancel: () => void; result: Promise<AdmissionResult>; ticket: () => AdmissionTicket } {
  const turn = q.enter();
  let ticket: AdmissionTicket | undefined;
  void turn.result.then((r) => {
    if (r.admitted) ticket = r.ticket;
    log.push(r.admitted ? `${label}:in` : `${label}:later`);
  });
  return {
    cancel: turn.cancel,
    result: turn.result,
    ticket: () => {
      if (!ticket) throw new Error(`${label} has no ticket`);
      return ticket;
    },
  };
}

describe('AdmissionQueue', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('lets in as many as it has slots, and the rest in arrival order as slots are freed', async () => {
    const q = new AdmissionQueue({ concurrency: 2, maxWaitMs: 10_000, holdMs: 60_000 });
    const log: string[] = [];
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((l) => track(q, l, log));
    await flush();
    expect(log).toEqual(['a:in', 'b:in']);
    expect([q.inProgress, q.queued]).toEqual([2, 2]);
    b.ticket().release();
    await flush();
    expect(log).toEqual(['a:in', 'b:in', 'c:in']);
    a.ticket().release();
    c.ticket().release();
    await flush();
    expect(log).toEqual(['a:in', 'b:in', 'c:in', 'd:in']);
    d.ticket().release();
    expect([q.inProgress, q.queued]).toEqual([0, 0]);
  });

  it('a newcomer does not pass agents already waiting, even when a slot is free for an instant', async () => {
    const q = new AdmissionQueue({ concurrency: 1, maxWaitMs: 10_000, holdMs: 60_000 });
    const log: string[] = [];
    const a = track(q, 'a', log);
    track(q, 'b', log);
    await flush();
    a.ticket().release(); // b's turn, granted synchronously in release
    track(q, 'c', log);
    await flush();
    expect(log).toEqual(['a:in', 'b:in']);
  });

  it('skips an agent whose connection closed while it waited, and its place costs no slot', async () => {
    const q = new AdmissionQueue({ concurrency: 1, maxWaitMs: 10_000, holdMs: 60_000 });
    const log: string[] = [];
    const a = track(q, 'a', log);
    const b = track(q, 'b', log);
    track(q, 'c', log);
    b.cancel();
    await flush();
    expect(q.queued).toBe(1);
    a.ticket().release();
    await flush();
    expect(log).toEqual(['a:in', 'b:later', 'c:in']);
    expect(q.inProgress).toBe(1);
  });

  it('tells an agent that waited its longest when to come back, from the pace slots were freed at', async () => {
    const q = new AdmissionQueue({ concurrency: 1, maxWaitMs: 5_000, holdMs: 60_000 });
    const log: string[] = [];
    // 10 turns within the last 5 s: a pace of 2 per second.
    for (let i = 0; i < 10; i++) {
      const t = track(q, `p${i}`, log);
      await flush();
      t.ticket().release();
    }
    const holder = track(q, 'holder', log);
    await flush();
    const waiters = Array.from({ length: 7 }, (_, i) => track(q, `w${i}`, log));
    jest.advanceTimersByTime(4_999);
    await flush();
    expect(log.filter((l) => l.endsWith(':later'))).toEqual([]);
    jest.advanceTimersByTime(1);
    const first = await waiters[0].result;
    // The window now holds no turns (all 5 s old), so the estimate falls back to the longest wait.
    expect(first).toEqual({ admitted: false, retryAfterMs: 5_000 });
    expect(q.queued).toBe(0);
    holder.ticket().release();
  });

  it('estimates the wait as the line ahead divided by the recent pace, within 1–30 s', async () => {
    const q = new AdmissionQueue({ concurrency: 1, maxWaitMs: 5_000, holdMs: 60_000 });
    const admit = async (): Promise<AdmissionTicket> => {
      const r = await q.enter().result;
      if (!r.admitted) throw new Error('refused');
      return r.ticket;
    };
    expect(q.retryAfterMs()).toBe(5_000); // no pace measured yet: the longest wait
    for (let i = 0; i < 10; i++) (await admit()).release(); // 10 turns in the 5 s window: 2 per second
    expect(q.retryAfterMs()).toBe(1_000); // nobody in line: the floor
    const holder = await admit();
    const line = Array.from({ length: 5 }, () => q.enter());
    expect(q.retryAfterMs()).toBe(3_000); // (5 waiting + 1 in progress) / 2 per second
    const more = Array.from({ length: 100 }, () => q.enter());
    expect(q.retryAfterMs()).toBe(30_000); // the ceiling
    for (const t of [...line, ...more]) t.cancel();
    holder.release();
    expect([q.inProgress, q.queued]).toEqual([0, 0]);
  });

  it('frees the slot of an agent that never says hello after the hold time, and a second release frees nothing', async () => {
    const q = new AdmissionQueue({ concurrency: 1, maxWaitMs: 60_000, holdMs: 15_000 });
    const log: string[] = [];
    const a = track(q, 'a', log);
    const b = track(q, 'b', log);
    track(q, 'c', log);
    await flush();
    jest.advanceTimersByTime(15_000);
    await flush();
    expect(log).toEqual(['a:in', 'b:in']);
    a.ticket().release(); // already freed by the hold: c must still wait for b
    await flush();
    expect(log).toEqual(['a:in', 'b:in']);
    b.ticket().release();
    b.ticket().release();
    await flush();
    expect(log).toEqual(['a:in', 'b:in', 'c:in']);
    expect(q.inProgress).toBe(1);
  });
});
