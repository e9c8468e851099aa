import { inAppContext } from './app-context';

/**
 * Coalesces writes from many sockets into few statements: `add(item)`
 * queues it and resolves once `write` has committed the batch it went out
 * in (so an ack sent then still means "stored"), or rejects with the
 * batch's error.
 *
 * Leading edge, then trailing (as the output writer): an item added to an
 * idle batcher goes out on the next turn of the event loop, so everything
 * read in that I/O phase shares it; items that follow within `coalesceMs`
 * of that batch, or while it is being written, join the next one. One
 * batch is written at a time, so under load batches grow with the
 * database's latency, and a later batch never commits before an earlier.
 *
 * `keyOf`: at most one item per key in a batch. A second item of a key
 * waits for the next batch, behind the first, so items of one key are
 * written in the order they were added and one batch never holds two
 * versions of the same rows (which its statements would apply in no
 * promised order).
 *
 * `isolate`: when a batch fails with an error this says is an item's own
 * (not the database being away), each of its items is written again alone,
 * so one bad item fails its own caller and nobody else's.
 */
export interface WriteBatcherOptions<T> {
  /** Default 10 ms. */
  coalesceMs?: number;
  /** Items per batch; the rest waits for the next. Default 2000. */
  maxItems?: number;
  keyOf?: (item: T) => string;
  isolate?: (err: unknown) => boolean;
}

interface Pending<T> {
  item: T;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class WriteBatcher<T> {
  private pending: Pending<T>[] = [];
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private draining: Promise<void> | null = null;
  private lastBatchAt = -Infinity;
  private readonly unsettled = new Set<Promise<void>>();
  private readonly coalesceMs: number;
  private readonly maxItems: number;
  /** Batches written so far (each one call of `write`, isolation retries not counted). */
  batches = 0;

  constructor(
    private readonly write: (items: T[]) => Promise<void>,
    private readonly options: WriteBatcherOptions<T> = {},
  ) {
    this.coalesceMs = options.coalesceMs ?? 10;
    this.maxItems = options.maxItems ?? 2000;
  }

  add(item: T): Promise<void> {
    const done = new Promise<void>((resolve, reject) => this.pending.push({ item, resolve, reject }));
    this.unsettled.add(done);
    const settled = (): void => void this.unsettled.delete(done);
    done.then(settled, settled);
    this.schedule();
    return done;
  }

  /** Resolves when everything added before the call has settled (committed or failed). */
  async flush(): Promise<void> {
    const waiting = [...this.unsettled];
    if (!waiting.length) return;
    void this.kick();
    await Promise.allSettled(waiting);
  }

  private schedule(): void {
    if (this.pending.length >= this.maxItems) return void this.kick();
    if (this.draining || this.timer || this.immediate) return;
    const wait = this.lastBatchAt + this.coalesceMs - performance.now();
    if (wait <= 0) this.immediate = setImmediate(() => void this.kick());
    else this.timer = setTimeout(() => void this.kick(), wait);
  }

  private kick(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = this.immediate = null;
    // The batch is written for every caller in it: as none of them.
    if (!this.draining && this.pending.length) this.draining = inAppContext(() => this.drain());
    return this.draining ?? Promise.resolve();
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending.length) {
        const batch: Pending<T>[] = [];
        const rest: Pending<T>[] = [];
        const keys = new Set<string>();
        for (const p of this.pending) {
          const key = this.options.keyOf?.(p.item);
          if (batch.length >= this.maxItems || (key !== undefined && keys.has(key))) {
            rest.push(p);
            continue;
          }
          if (key !== undefined) keys.add(key);
          batch.push(p);
        }
        // What is added while this batch is written queues behind what it left for later.
        this.pending = rest;
        this.lastBatchAt = performance.now();
        this.batches++;
        try {
          await this.write(batch.map((p) => p.item));
          for (const p of batch) p.resolve();
        } catch (err) {
          if (batch.length > 1 && this.options.isolate?.(err)) await this.alone(batch);
          else for (const p of batch) p.reject(err);
        }
      }
    } finally {
      // In the same turn as the loop's last look at `pending`: an add after it sees no drain and schedules its own.
      this.draining = null;
    }
  }

  private async alone(batch: Pending<T>[]): Promise<void> {
    for (const p of batch) {
      try {
        await this.write([p.item]);
        p.resolve();
      } catch (err) {
        p.reject(err);
      }
    }
  }
}
