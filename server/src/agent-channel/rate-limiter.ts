/**
 * Token bucket per socket: `rate` events a second, bursts up to `burst`.
 * A socket that keeps pushing past it is cut off (threat model T15).
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  /** Events refused in a row; reset by any admitted one. */
  strikes = 0;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    clock?: () => number,
  ) {
    // A bucket lives in `socket.data`, which the Redis adapter serialises for other nodes (fetchSockets):
    // a function-valued own property makes msgpack throw there and crashes that node. Only a test's clock is one.
    if (clock) this.now = clock;
    this.tokens = burst;
    this.last = this.now();
  }

  private now(): number {
    return Date.now();
  }

  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      this.strikes = 0;
      return true;
    }
    this.strikes += 1;
    return false;
  }
}
