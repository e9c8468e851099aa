import { backoffVerdict, throttleVerdict } from './login-throttle.service';

/** Unit: the sliding-window rule and its Retry-After. No I/O. */
describe('throttleVerdict', () => {
  const now = 1_000_000_000;
  const s = (seconds: number) => seconds * 1000;

  it('allows while fewer than the limit failed in the window', () => {
    expect(throttleVerdict([], now, 5, 60)).toEqual({ allowed: true });
    expect(throttleVerdict([now - s(1), now - s(2), now - s(3), now - s(4)], now, 5, 60)).toEqual({ allowed: true });
  });

  it('refuses the attempt after the limit, until the oldest counted failure leaves the window', () => {
    const failures = [now - s(10), now - s(8), now - s(6), now - s(4), now - s(2)];
    // The oldest (10 s ago) leaves a 60 s window in 50 s.
    expect(throttleVerdict(failures, now, 5, 60)).toEqual({ allowed: false, retryAfterSeconds: 50 });
  });

  it('does not care about the order it is given', () => {
    const failures = [now - s(2), now - s(10), now - s(6), now - s(4), now - s(8)];
    expect(throttleVerdict(failures, now, 5, 60)).toEqual({ allowed: false, retryAfterSeconds: 50 });
  });

  it('with more failures than the limit, waits for enough of them to leave', () => {
    // 7 failures, limit 5: three must leave; the third-oldest is 30 s old → free in 30 s.
    const failures = [50, 40, 30, 20, 10, 5, 1].map((a) => now - s(a));
    expect(throttleVerdict(failures, now, 5, 60)).toEqual({ allowed: false, retryAfterSeconds: 30 });
  });

  it('ignores failures older than the window', () => {
    const failures = [now - s(61), now - s(70), now - s(3), now - s(2), now - s(1), now - s(60)];
    expect(throttleVerdict(failures, now, 5, 60)).toEqual({ allowed: true });
  });

  it('rounds Retry-After up to whole seconds and never answers 0', () => {
    expect(throttleVerdict([now - 59_001], now, 1, 60)).toEqual({ allowed: false, retryAfterSeconds: 1 });
    expect(throttleVerdict([now - 58_500], now, 1, 60)).toEqual({ allowed: false, retryAfterSeconds: 2 });
    expect(throttleVerdict([now - 59_999], now, 1, 60)).toEqual({ allowed: false, retryAfterSeconds: 1 });
    expect(throttleVerdict([now], now, 1, 2)).toEqual({ allowed: false, retryAfterSeconds: 2 });
  });

  it('a limit of 1 refuses after a single failure', () => {
    expect(throttleVerdict([now - s(5)], now, 1, 60)).toEqual({ allowed: false, retryAfterSeconds: 55 });
  });
});

/** Unit: the sliding window plus exponential backoff. No I/O. */
describe('backoffVerdict', () => {
  const now = 1_000_000_000;
  const s = (seconds: number) => seconds * 1000;
  const cap = 3600;

  it('below the limit: allowed, whatever the lookback holds', () => {
    expect(backoffVerdict([now - s(1), now - s(2)], now, 5, 60, cap)).toEqual({ allowed: true });
  });

  it('at the limit inside the window: refused until one window after the latest failure', () => {
    const failures = [now - s(10), now - s(8), now - s(6), now - s(4), now - s(2)];
    expect(backoffVerdict(failures, now, 5, 60, cap)).toEqual({ allowed: false, retryAfterSeconds: 58 });
  });

  it('each failure past the limit doubles the wait after the latest one', () => {
    const old = [1, 2, 3, 4, 5].map((i) => now - s(3000 + i));
    expect(backoffVerdict([...old, now - s(1)], now, 5, 60, cap)).toEqual({ allowed: false, retryAfterSeconds: 119 });
    expect(backoffVerdict([...old, now - s(500), now - s(1)], now, 5, 60, cap)).toEqual({ allowed: false, retryAfterSeconds: 239 });
    // And once that wait is over, the next attempt may go ahead.
    expect(backoffVerdict([...old, now - s(121)], now, 5, 60, cap)).toEqual({ allowed: true });
  });

  it('the wait is capped', () => {
    const many = Array.from({ length: 40 }, (_, i) => now - s(80_000 - i * 1000));
    const v = backoffVerdict([...many, now - s(1)], now, 5, 60, cap);
    expect(v).toEqual({ allowed: false, retryAfterSeconds: cap - 1 });
  });

  it('attempts still in flight inside one window do not steepen it', () => {
    const burst = Array.from({ length: 19 }, () => now - 100);
    expect(backoffVerdict(burst, now, 5, 60, cap)).toEqual({ allowed: false, retryAfterSeconds: 60 });
  });
});
