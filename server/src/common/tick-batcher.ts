import { inAppContext } from './app-context';

/**
 * Coalesces the reads asked for in one turn of the event loop into few
 * queries: `get(key)` queues the key, and on the next turn (setImmediate,
 * so every socket message read in that I/O phase joins) `load` runs once per
 * `max` distinct keys. Many sockets reporting at once (a fan-out, a
 * reconnect storm) then cost a handful of statements instead of one round
 * trip each; a lone request waits one turn, well under a millisecond.
 *
 * While a load is in flight the keys asked for meanwhile wait for it to
 * end and then go together (group commit): under load the batches grow
 * with the round trip instead of staying at the one or two keys a turn
 * brings when sockets report one by one (a storm's hellos, measured: about
 * two keys per statement). At most `maxInFlight` loads (default 2) run at
 * once; a lone request still waits one turn.
 *
 * `load` returns the values it found; a key it did not return resolves to
 * `undefined`. If `load` fails, every `get` of that slice rejects with its
 * error. Values are shared by the callers of one key, so they should be
 * treated as read-only or copied by `load`'s caller (see `copy`).
 */
export class TickBatcher<K, V> {
  private queued = new Map<K, { resolve: (v: V | undefined) => void; reject: (err: unknown) => void }[]>();
  private scheduled = false;
  private inFlight = 0;

  constructor(
    private readonly load: (keys: K[]) => Promise<Map<K, V>>,
    private readonly options: { max?: number; maxInFlight?: number; copy?: (v: V) => V } = {},
  ) {}

  get(key: K): Promise<V | undefined> {
    return new Promise((resolve, reject) => {
      let waiters = this.queued.get(key);
      if (!waiters) this.queued.set(key, (waiters = []));
      waiters.push({ resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.queued.size === 0 || this.inFlight >= (this.options.maxInFlight ?? 2)) return;
    this.scheduled = true;
    // One load for every caller of the turn: run as none of them.
    setImmediate(() => void inAppContext(() => this.run()));
  }

  private async run(): Promise<void> {
    this.inFlight++;
    try {
      await this.flush();
    } finally {
      this.inFlight--;
      this.schedule();
    }
  }

  private async flush(): Promise<void> {
    const queued = this.queued;
    this.queued = new Map();
    this.scheduled = false;
    const keys = [...queued.keys()];
    const max = this.options.max ?? 500;
    const copy = this.options.copy;
    await Promise.all(
      Array.from({ length: Math.ceil(keys.length / max) }, async (_, i) => {
        const slice = keys.slice(i * max, (i + 1) * max);
        try {
          const found = await this.load(slice);
          for (const k of slice) {
            const v = found.get(k);
            for (const w of queued.get(k)!) w.resolve(v === undefined || !copy ? v : copy(v));
          }
        } catch (err) {
          for (const k of slice) for (const w of queued.get(k)!) w.reject(err);
        }
      }),
    );
  }
}
