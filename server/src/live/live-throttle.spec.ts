import { LiveThrottle } from './live-throttle';

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

  it('bounds history reads in flight per socket; an answered one makes room', () => {
    const s = new LiveThrottle(100, 2, () => 0).open('u');
    expect([s.admit(true), s.admit(true), s.admit(true)]).toEqual([null, null, 'history_in_flight']);
    expect(s.admit(false)).toBeNull(); // cheap events still pass
    s.done();
    expect(s.admit(true)).toBeNull();
    expect(s.admit(true)).toBe('history_in_flight');
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
