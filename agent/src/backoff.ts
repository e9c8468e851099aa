/**
 * Reconnect backoff with jitter (MeshCentral's scheme, docs/design.md "Lessons from other tools"):
 * the first retry waits a random 0.5–2 s; every next one a random delay
 * between the previous delay and twice it, capped. Near the cap the lower
 * bound is at most 3/4 of the cap, so agents that sit at the cap keep a
 * random spread instead of retrying in lock-step.
 */

export const FIRST_RETRY_MIN_MS = 500;
export const FIRST_RETRY_MAX_MS = 2000;
export const DEFAULT_MAX_BACKOFF_MS = 60_000;

/**
 * The delay before the next attempt.
 * @param prevMs the previous delay; 0 (or less) when this is the first retry
 * @param rng uniform random in [0, 1)
 * @param capMs upper bound of any delay
 */
export function nextDelay(prevMs: number, rng: () => number = Math.random, capMs = DEFAULT_MAX_BACKOFF_MS): number {
  const cap = Math.max(1, capMs);
  const r = clamp01(rng());
  if (!(prevMs > 0)) {
    const lo = Math.min(FIRST_RETRY_MIN_MS, cap);
    const hi = Math.min(FIRST_RETRY_MAX_MS, cap);
    return Math.round(lo + r * (hi - lo));
  }
  const lo = Math.min(prevMs, cap * 0.75);
  const hi = Math.min(prevMs * 2, cap);
  return Math.round(lo + r * Math.max(0, hi - lo));
}

function clamp01(x: number): number {
  if (!Number.isFinite(x) || x < 0) return 0;
  return x >= 1 ? 0.999999 : x;
}

/** Stateful helper around {@link nextDelay}. */
export class Backoff {
  private prev = 0;
  constructor(
    private readonly capMs = DEFAULT_MAX_BACKOFF_MS,
    private readonly rng: () => number = Math.random,
  ) {}
  next(): number {
    this.prev = nextDelay(this.prev, this.rng, this.capMs);
    return this.prev;
  }
  reset(): void {
    this.prev = 0;
  }
  get current(): number {
    return this.prev;
  }
}
