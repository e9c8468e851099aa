import { TokenBucket } from '../agent-channel/rate-limiter';

/** Refused events in a row after which a `/live` socket is dropped. */
export const LIVE_MAX_STRIKES = 100;
/** History reads that may wait for a turn, per read allowed to run: a dashboard opening many runs at once is queued, not refused. */
export const HISTORY_WAITING_PER_RUNNING = 16;

export type LiveRefusal = 'socket_rate' | 'user_rate' | 'history_in_flight';

/** One socket's share: its own bucket, its user's bucket, its history reads under way. */
export interface LiveSocketThrottle {
  /** Admit an event (a history read when `history`), or say why not. An admitted history read must be `done()` once. */
  admit(history: boolean): LiveRefusal | null;
  /** For an admitted history read: resolves when it may run (at once while fewer than the bound run), in arrival order. */
  turn(): Promise<void>;
  /** A history read admitted by `admit(true)` has answered. */
  done(): void;
  /** Refusals in a row. */
  readonly strikes: number;
  /** The socket closed: its user's bucket is forgotten with the user's last socket. */
  close(): void;
}

/**
 * The `/live` rate limits (threat model T44): every socket gets `rate`
 * events a second (bursts of 10x), all sockets of one user on this node
 * together twice that, so opening more tabs does not multiply what one user
 * may ask; and at most `historyInFlight` history reads under way per socket,
 * the expensive event (each reads up to a page of the log), with up to
 * HISTORY_WAITING_PER_RUNNING times that waiting their turn; only past
 * those is a read refused. What is refused costs no read; a socket that
 * keeps pushing is dropped by the gateway.
 */
export class LiveThrottle {
  private readonly users = new Map<string, { bucket: TokenBucket; sockets: number }>();

  constructor(
    private readonly rate: number,
    private readonly historyInFlight: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Users with a bucket on this node (bounded by the users connected). */
  get userCount(): number {
    return this.users.size;
  }

  open(userId: string): LiveSocketThrottle {
    let user = this.users.get(userId);
    if (!user) this.users.set(userId, (user = { bucket: new TokenBucket(this.rate * 2, this.rate * 20, this.now), sockets: 0 }));
    user.sockets++;
    const owner = user;
    const own = new TokenBucket(this.rate, this.rate * 10, this.now);
    const max = this.historyInFlight;
    const admittedMax = max * (1 + HISTORY_WAITING_PER_RUNNING);
    /** History reads admitted and not done: running plus waiting. */
    let admitted = 0;
    let running = 0;
    const waiting: (() => void)[] = [];
    let strikes = 0;
    let closed = false;
    const refuse = (why: LiveRefusal): LiveRefusal => {
      strikes++;
      return why;
    };
    return {
      admit: (history) => {
        if (!own.take()) return refuse('socket_rate');
        if (!owner.bucket.take()) return refuse('user_rate');
        if (history && admitted >= admittedMax) return refuse('history_in_flight');
        if (history) admitted++;
        strikes = 0;
        return null;
      },
      turn: () => {
        if (running < max) {
          running++;
          return Promise.resolve();
        }
        return new Promise<void>((resolve) => waiting.push(resolve));
      },
      done: () => {
        admitted = Math.max(0, admitted - 1);
        const next = waiting.shift();
        if (next) next(); // its turn passes on: `running` stays
        else running = Math.max(0, running - 1);
      },
      get strikes() {
        return strikes;
      },
      close: () => {
        if (closed) return;
        closed = true;
        if (--owner.sockets === 0 && this.users.get(userId) === owner) this.users.delete(userId);
      },
    };
  }
}
