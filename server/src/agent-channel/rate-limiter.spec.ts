import { TokenBucket } from './rate-limiter';

describe('TokenBucket', () => {
  it('admits a burst, then refuses until time refills it at the rate', () => {
    let now = 0;
    const b = new TokenBucket(10, 5, () => now);
    expect(Array.from({ length: 5 }, () => b.take())).toEqual([true, true, true, true, true]);
    expect(b.take()).toBe(false);
    expect(b.strikes).toBe(1);
    now += 100; // one token at 10/s
    expect(b.take()).toBe(true);
    expect(b.strikes).toBe(0);
    expect(b.take()).toBe(false);
  });

  it('never holds more than the burst, however long it idles', () => {
    let now = 0;
    const b = new TokenBucket(100, 3, () => now);
    now += 60_000;
    expect([b.take(), b.take(), b.take(), b.take()]).toEqual([true, true, true, false]);
  });

  it('counts refusals in a row', () => {
    const b = new TokenBucket(1, 1, () => 0);
    b.take();
    for (let i = 0; i < 7; i++) b.take();
    expect(b.strikes).toBe(7);
  });

  it('holds only plain data, so a socket.data holding it can be sent to another node', () => {
    const b = new TokenBucket(10, 5);
    b.take();
    expect(Object.values(b).filter((v) => typeof v === 'function')).toEqual([]);
    expect(JSON.parse(JSON.stringify(b))).toEqual({ rate: 10, burst: 5, tokens: expect.any(Number), last: expect.any(Number), strikes: 0 });
  });
});
