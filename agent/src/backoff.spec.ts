import { Backoff, DEFAULT_MAX_BACKOFF_MS, nextDelay } from './backoff';

/** A deterministic rng returning the given values in turn. */
const seq = (...values: number[]) => {
  let i = 0;
  return () => values[i++ % values.length]!;
};

describe('nextDelay', () => {
  it('first retry is a random 0.5–2 s', () => {
    expect(nextDelay(0, () => 0)).toBe(500);
    expect(nextDelay(0, () => 0.999999)).toBe(2000);
    expect(nextDelay(0, () => 0.5)).toBe(1250);
    for (let i = 0; i < 1000; i++) {
      const d = nextDelay(0);
      expect(d).toBeGreaterThanOrEqual(500);
      expect(d).toBeLessThanOrEqual(2000);
    }
  });

  it('then a random delay between the previous one and twice it', () => {
    expect(nextDelay(1000, () => 0)).toBe(1000);
    expect(nextDelay(1000, () => 0.999999)).toBe(2000);
    for (let i = 0; i < 1000; i++) {
      const prev = 500 + Math.random() * 10_000;
      const d = nextDelay(prev);
      expect(d).toBeGreaterThanOrEqual(Math.round(prev));
      expect(d).toBeLessThanOrEqual(Math.round(2 * prev));
    }
  });

  it('never exceeds the cap, and keeps a spread at the cap', () => {
    const cap = 60_000;
    const atCap = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const d = nextDelay(cap, Math.random, cap);
      expect(d).toBeLessThanOrEqual(cap);
      expect(d).toBeGreaterThanOrEqual(cap * 0.75);
      atCap.add(d);
    }
    expect(atCap.size).toBeGreaterThan(100); // jittered, not lock-step
    expect(nextDelay(50_000, () => 0.999999, cap)).toBe(cap);
    expect(nextDelay(50_000, () => 0, cap)).toBe(45_000);
    expect(nextDelay(0, () => 0.9, 300)).toBeLessThanOrEqual(300); // a cap below the first window
    expect(DEFAULT_MAX_BACKOFF_MS).toBe(60_000);
  });

  it('tolerates a misbehaving rng', () => {
    expect(nextDelay(0, () => NaN)).toBe(500);
    expect(nextDelay(0, () => 7)).toBeLessThanOrEqual(2000);
    expect(nextDelay(1000, () => -3)).toBe(1000);
  });

  it('is jittered: many agents starting together spread out', () => {
    const firsts = Array.from({ length: 1000 }, () => nextDelay(0));
    const buckets = new Array(6).fill(0) as number[];
    for (const d of firsts) buckets[Math.min(5, Math.floor((d - 500) / 250))]!++;
    for (const b of buckets) expect(b).toBeGreaterThan(80); // roughly uniform over 0.5–2 s
  });
});

describe('Backoff', () => {
  it('grows until the cap and starts over after reset', () => {
    const b = new Backoff(10_000, seq(0.999999));
    const delays = Array.from({ length: 8 }, () => b.next());
    expect(delays[0]).toBe(2000);
    expect(delays[1]).toBe(4000);
    expect(delays[2]).toBe(8000);
    expect(delays.slice(3).every((d) => d === 10_000)).toBe(true);
    b.reset();
    expect(b.current).toBe(0);
    expect(b.next()).toBe(2000);
  });
});
