/**
 * How many agents this node lets through the handshake at once (credential,
 * hello, the features' hello plans). The rest wait in arrival order on their
 * open connection, which costs the server nothing but a socket, instead of
 * all being served at once and all timing out together: after a restart
 * every agent arrives within seconds, and a node that takes them all at once
 * answers none of them within the agent's connect timeout, so each one backs
 * off further and the storm lasts minutes.
 *
 * An agent that waited `maxWaitMs` without a turn is refused `unavailable`
 * with `retryAfterMs` (how long the queue ahead of it would take at the pace
 * slots were freed lately), well before its own connect timeout: it comes
 * back then without counting the refusal as a failure.
 */
export interface AdmissionOptions {
  /** Handshakes in progress at once. */
  concurrency: number;
  /** Longest wait for a turn before the agent is told to come back later. */
  maxWaitMs: number;
  /** A turn ends at the hello's answer; one that never says hello frees its slot after this. */
  holdMs: number;
  now?: () => number;
}

/** A slot in the handshake; release it once the hello is answered or the socket is gone. Idempotent. */
export interface AdmissionTicket {
  release(): void;
}

export type AdmissionResult = { admitted: true; ticket: AdmissionTicket } | { admitted: false; retryAfterMs: number };

interface Waiter {
  grant: (r: AdmissionResult) => void;
  timer: NodeJS.Timeout;
  done: boolean;
}

/** Slots freed per second, over this window, give the pace `retryAfterMs` is estimated from. */
const PACE_WINDOW_MS = 5_000;
const MIN_RETRY_AFTER_MS = 1_000;
const MAX_RETRY_AFTER_MS = 30_000;

export class AdmissionQueue {
  private active = 0;
  private readonly waiting: Waiter[] = [];
  private head = 0;
  private pending = 0;
  /** Release times within the pace window, oldest first. */
  private readonly releases: number[] = [];
  private readonly now: () => number;

  constructor(private readonly options: AdmissionOptions) {
    this.now = options.now ?? Date.now;
  }

  get inProgress(): number {
    return this.active;
  }

  get queued(): number {
    return this.pending;
  }

  /**
   * A turn, at once when a slot is free, otherwise in arrival order; or a
   * refusal after `maxWaitMs`. `cancel` (the connection closed while it
   * waited) takes the waiter out of the line.
   */
  enter(): { result: Promise<AdmissionResult>; cancel: () => void } {
    if (this.active < this.options.concurrency && this.pending === 0) {
      return { result: Promise.resolve({ admitted: true, ticket: this.ticket() }), cancel: () => undefined };
    }
    let waiter!: Waiter;
    const result = new Promise<AdmissionResult>((grant) => {
      waiter = {
        grant,
        done: false,
        timer: setTimeout(() => {
          if (waiter.done) return;
          this.settle(waiter);
          grant({ admitted: false, retryAfterMs: this.retryAfterMs() });
        }, this.options.maxWaitMs),
      };
    });
    waiter.timer.unref();
    this.waiting.push(waiter);
    this.pending++;
    const cancel = (): void => {
      if (waiter.done) return;
      this.settle(waiter);
      waiter.grant({ admitted: false, retryAfterMs: 0 });
    };
    return { result, cancel };
  }

  /**
   * How long the agents now waiting would take to be let in at the pace of
   * the last few seconds, spread by the agent's own jitter: coming back
   * sooner would only wait again.
   */
  retryAfterMs(): number {
    const now = this.now();
    this.trim(now);
    const perSecond = this.releases.length / (PACE_WINDOW_MS / 1000);
    const estimate = perSecond > 0 ? ((this.pending + this.active) / perSecond) * 1000 : this.options.maxWaitMs;
    return Math.round(Math.min(MAX_RETRY_AFTER_MS, Math.max(MIN_RETRY_AFTER_MS, estimate)));
  }

  private ticket(): AdmissionTicket {
    this.active++;
    let released = false;
    const hold = setTimeout(() => release(), this.options.holdMs);
    hold.unref();
    const release = (): void => {
      if (released) return;
      released = true;
      clearTimeout(hold);
      this.active--;
      const now = this.now();
      this.releases.push(now);
      this.trim(now);
      this.next();
    };
    return { release };
  }

  private next(): void {
    while (this.active < this.options.concurrency && this.pending > 0) {
      const waiter = this.waiting[this.head];
      this.head++;
      if (waiter.done) continue;
      this.settle(waiter);
      waiter.grant({ admitted: true, ticket: this.ticket() });
    }
    this.compact();
  }

  private settle(waiter: Waiter): void {
    waiter.done = true;
    clearTimeout(waiter.timer);
    this.pending--;
    this.compact();
  }

  /** Drops the settled entries at the head, and the array's consumed prefix now and then (amortised O(1) per waiter). */
  private compact(): void {
    while (this.head < this.waiting.length && this.waiting[this.head].done) this.head++;
    if (this.head === this.waiting.length) {
      this.waiting.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting.splice(0, this.head);
      this.head = 0;
    }
  }

  private trim(now: number): void {
    let drop = 0;
    while (drop < this.releases.length && this.releases[drop] <= now - PACE_WINDOW_MS) drop++;
    if (drop) this.releases.splice(0, drop);
  }
}
