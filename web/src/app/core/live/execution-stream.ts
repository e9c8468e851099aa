import {
  ExecutionSummarySchema,
  OutputChunkSchema,
  isFinalStatus,
  type ExecutionChunksAck,
  type ExecutionSummary,
  type OutputChunk,
} from '@kapitan/shared';
import { ChunkSequencer } from './chunk-sequencer';

/** How an {@link ExecutionStream} talks to the server (the `/live` socket in the app, a fake in tests). */
export interface ExecutionTransport {
  /** `subscribe:execution {executionId, fromSeq}`: joins the room, acks stored output from `fromSeq`. */
  subscribe(fromSeq: number): Promise<ExecutionChunksAck>;
  /** `execution:history {executionId, fromSeq}`: stored output from `fromSeq`. */
  history(fromSeq: number): Promise<ExecutionChunksAck>;
}

export type ExecutionFeedEvent =
  /** The execution's state, from an ack or an `execution:updated`. */
  | { type: 'execution'; execution: ExecutionSummary }
  /** Output ready to render: in sequence order, each chunk exactly once over the life of the stream. */
  | { type: 'output'; chunks: OutputChunk[] }
  /** Chunks `fromSeq..toSeq` were given up on: the server did not have them after repeated asks. */
  | { type: 'gap'; fromSeq: number; toSeq: number }
  | { type: 'error'; message: string };

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface ExecutionStreamOptions {
  /** How long a gap may stand before the missing chunks are asked for (the live tail usually fills it first). */
  gapWaitMs: number;
  /** Upper bound of the back-off between repeated asks for the same gap. */
  gapRetryMaxMs: number;
  /** Asks after which a gap in a running execution is skipped (a finished one: after the first). */
  skipGapAfterMisses: number;
  /** After the execution turns final, ask for anything after the last chunk seen at these delays. */
  finalSweepsMs: readonly number[];
  /** Delay before re-subscribing when the subscribe request itself failed (timeout). */
  resubscribeMs: number;
  timers: Timers;
}

const DEFAULTS: ExecutionStreamOptions = {
  gapWaitMs: 300,
  gapRetryMaxMs: 8000,
  skipGapAfterMisses: 6,
  finalSweepsMs: [300, 2000],
  resubscribeMs: 2000,
  timers: {
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
  },
};

/**
 * The client half of "no output is lost and none is doubled" for one execution:
 * merges the history acks and the live `execution:output` tail by sequence number,
 * asks for missing chunks when a gap persists, and resumes from the next expected
 * sequence number after a reconnect. No I/O of its own: the transport does that.
 */
export class ExecutionStream {
  private readonly seq: ChunkSequencer;
  private readonly opts: ExecutionStreamOptions;
  /** Bumped on every (re)connect and disconnect: answers to older requests are ignored. */
  private generation = 0;
  private connected = false;
  private busy = false;
  /** The server may hold stored chunks after `expected` that we have not asked for yet. */
  private wantHistory = false;
  private gapTimer: unknown = null;
  private gapMisses = 0;
  private final = false;
  private disposed = false;
  private readonly pending = new Set<unknown>();

  constructor(
    private readonly transport: ExecutionTransport,
    private readonly emit: (e: ExecutionFeedEvent) => void,
    options: Partial<ExecutionStreamOptions> = {},
    fromSeq = 0,
  ) {
    this.opts = { ...DEFAULTS, ...options };
    this.seq = new ChunkSequencer(fromSeq);
  }

  get expected(): number {
    return this.seq.expected;
  }

  /** The socket is connected (again): join the room from where we are and page in the stored output. */
  connect(): void {
    if (this.disposed) return;
    const gen = ++this.generation;
    this.connected = true;
    this.busy = true;
    this.clearGapTimer();
    this.transport.subscribe(this.seq.expected).then(
      (ack) => {
        if (gen !== this.generation) return;
        this.busy = false;
        if (this.take(ack) !== null) this.wantHistory = ack.ok && ack.chunks.length > 0;
        this.pump();
      },
      (err: unknown) => {
        if (gen !== this.generation) return;
        this.busy = false;
        this.emit({ type: 'error', message: `live output: ${messageOf(err)}` });
        this.later(this.opts.resubscribeMs, () => gen === this.generation && this.connect());
      },
    );
  }

  /** The socket dropped: nothing to ask until it is back. */
  disconnect(): void {
    this.generation++;
    this.connected = false;
    this.busy = false;
    this.clearGapTimer();
  }

  /** Chunks from `execution:output`. */
  onLive(chunks: readonly OutputChunk[]): void {
    if (this.disposed) return;
    this.accept(chunks);
    this.pump();
  }

  /** An `execution:updated` for this execution. */
  onExecution(execution: ExecutionSummary): void {
    if (this.disposed) return;
    this.noteExecution(execution);
  }

  dispose(): void {
    this.disposed = true;
    this.disconnect();
    for (const h of this.pending) this.opts.timers.clearTimeout(h);
    this.pending.clear();
  }

  // ------------------------------------------------------------------ internals

  /** Applies an ack; returns the number of new chunks, or null when it was an error. */
  private take(ack: ExecutionChunksAck): number | null {
    if (!ack.ok) {
      this.emit({ type: 'error', message: ack.error.message });
      return null;
    }
    const execution = ExecutionSummarySchema.safeParse(ack.execution);
    if (execution.success) this.noteExecution(execution.data);
    const chunks = OutputChunkSchema.array().safeParse(ack.chunks);
    if (!chunks.success) {
      this.emit({ type: 'error', message: 'live output: the server sent malformed chunks' });
      return null;
    }
    return this.accept(chunks.data);
  }

  private accept(chunks: readonly OutputChunk[]): number {
    const before = this.seq.expected;
    const { ready, accepted } = this.seq.accept(chunks);
    if (ready.length) this.emit({ type: 'output', chunks: ready });
    if (this.seq.expected !== before) this.gapMisses = 0;
    if (!this.seq.hasGap) this.clearGapTimer();
    return accepted;
  }

  private noteExecution(execution: ExecutionSummary): void {
    this.emit({ type: 'execution', execution });
    if (!this.final && isFinalStatus(execution.status)) {
      this.final = true;
      // The last chunks may have been stored after our last ask and forwarded before we joined.
      for (const ms of this.opts.finalSweepsMs) {
        this.later(ms, () => {
          this.wantHistory = true;
          this.pump();
        });
      }
    }
  }

  /** Decides the next request: more history now, or a timed ask for a gap. */
  private pump(): void {
    if (this.disposed || !this.connected || this.busy) return;
    if (this.wantHistory) {
      this.requestHistory(false);
    } else if (this.seq.hasGap && this.gapTimer === null) {
      const wait = Math.min(this.opts.gapWaitMs * 2 ** this.gapMisses, this.opts.gapRetryMaxMs);
      this.gapTimer = this.later(wait, () => {
        this.gapTimer = null;
        if (this.seq.hasGap) this.requestHistory(true);
      });
    }
  }

  private requestHistory(forGap: boolean): void {
    if (this.busy || !this.connected) return;
    const gen = this.generation;
    const from = this.seq.expected;
    this.busy = true;
    this.wantHistory = false;
    this.transport.history(from).then(
      (ack) => {
        if (gen !== this.generation) return;
        this.busy = false;
        const accepted = this.take(ack);
        if (accepted === null) return;
        this.wantHistory = accepted > 0;
        if (forGap && this.seq.hasGap && this.seq.expected === from) this.missedGap();
        this.pump();
      },
      (err: unknown) => {
        if (gen !== this.generation) return;
        this.busy = false;
        this.emit({ type: 'error', message: `live output: ${messageOf(err)}` });
        if (forGap) this.gapMisses++;
        this.pump();
      },
    );
  }

  /** The server answered without the missing chunks. */
  private missedGap(): void {
    this.gapMisses++;
    if (this.gapMisses < (this.final ? 1 : this.opts.skipGapAfterMisses)) return;
    const skipped = this.seq.skipGap();
    if (!skipped) return;
    this.gapMisses = 0;
    this.emit({ type: 'gap', fromSeq: skipped.fromSeq, toSeq: skipped.toSeq });
    if (skipped.ready.length) this.emit({ type: 'output', chunks: skipped.ready });
    this.wantHistory = true;
  }

  private later(ms: number, fn: () => void): unknown {
    const h = this.opts.timers.setTimeout(() => {
      this.pending.delete(h);
      if (!this.disposed) fn();
    }, ms);
    this.pending.add(h);
    return h;
  }

  private clearGapTimer(): void {
    if (this.gapTimer === null) return;
    this.opts.timers.clearTimeout(this.gapTimer);
    this.pending.delete(this.gapTimer);
    this.gapTimer = null;
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
