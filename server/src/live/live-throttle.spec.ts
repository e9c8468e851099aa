import { HISTORY_WAITING_PER_RUNNING, LiveThrottle } from './live-throttle';

describe('LiveThrottle', () => {
  it("admits a socket's burst, then refuses until time refills it at the rate", () => {
    let now = 0;
    const s = new LiveThrottle(2, 4, () => now).open('u');
    expect(Array.from({ length: 20 }, () => s.admit(false))).toEqual(Array(20).fill(null));
    expect(s.admit(false)).toBe('socket_rate');
    expect(s.strikes).toBe(1);
    now += 500; // one token at 2/s
    expect(s.admit(false)).toBeNull();
    expect(s.strikes).toBe(0);
  });

  it("shares one bucket between a user's sockets: more tabs do not multiply the rate", () => {
    const t = new LiveThrottle(2, 4, () => 0);
    const a = t.open('u');
    const b = t.open('u');
    const c = t.open('u');
    const other = t.open('v');
    for (const s of [a, b]) for (let i = 0; i < 20; i++) expect(s.admit(false)).toBeNull();
    // c's own bucket is full, but the user's (2x a socket's) is spent.
    expect(c.admit(false)).toBe('user_rate');
    expect(other.admit(false)).toBeNull();
  });

  it('bounds history reads per socket: a few run, more wait their turn in order, past that they are refused', async () => {
    const s = new LiveThrottle(1_000, 2, () => 0).open('u');
    const admittedMax = 2 * (1 + HISTORY_WAITING_PER_RUNNING);
    for (let i = 0; i < admittedMax; i++) expect(s.admit(true)).toBeNull();
    expect(s.admit(true)).toBe('history_in_flight');
    expect(s.admit(false)).toBeNull(); // cheap events still pass
    const started: number[] = [];
    const turns = Array.from({ length: admittedMax }, (_, i) => s.turn().then(() => started.push(i)));
    await Promise.resolve();
    expect(started).toEqual([0, 1]); // two run at once; the rest wait
    s.done();
    await Promise.resolve();
    await Promise.resolve();
    expect(started).toEqual([0, 1, 2]); // an answered one passes its turn to the next in line
    expect(s.admit(true)).toBeNull(); // and makes room for one more
    expect(s.admit(true)).toBe('history_in_flight');
    for (let i = 0; i < admittedMax; i++) s.done();
    await Promise.all(turns);
    expect(started).toEqual(Array.from({ length: admittedMax }, (_, i) => i));
  });

  it("forgets a user's bucket with their last socket", () => {
    const t = new LiveThrottle(1, 1, () => 0);
    const a = t.open('u');
    const b = t.open('u');
    a.close();
    a.close(); // twice changes nothing
    expect(t.userCount).toBe(1);
    b.close();
    expect(t.userCount).toBe(0);
  });
});
