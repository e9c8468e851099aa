/**
 * The outbox: every event the agent owes the server about an execution
 * (`execution:started`, `execution:output` chunks, `execution:finished`),
 * kept in order until the server acknowledges it as stored (design
 * invariant 2), and bounded in bytes (design invariant 7).
 *
 * - Per execution, entries leave in the order they were queued: `started`
 *   first and alone, then output chunks in sequence order batched into
 *   messages (at most LIMITS.chunksPerMessageMax chunks and
 *   `maxMessageBytes` of encoded data each), then `finished` once every
 *   earlier entry of that execution is acknowledged.
 * - Up to `window` messages are in flight at once (all executions together).
 * - An ack `{ok:true}` frees the entries. A missing ack (timeout,
 *   disconnect) or a transient error ack (service unavailable, rate limited,
 *   internal error — the latter at most MAX_INTERNAL_ERRORS times) puts them
 *   back: they are sent again, in order, after a short backoff or after the
 *   next `attach`. Any other error ack means the server refused them for good
 *   (not this machine's execution, invalid): they are dropped and reported
 *   through the `dropped` event.
 * - `bytes` counts what is held. At `maxBytes` the outbox is `full` and emits
 *   `full`; the producer is expected to stop reading its source (see
 *   manager.ts) until `drain`, emitted when acks bring it under half the bound.
 *   Nothing is ever refused or dropped for lack of room.
 *
 * The outbox knows nothing about sockets: `attach` gives it a transport (a
 * connected socket), `detach` takes it away. It is shared by the agent and by
 * simulated agents.
 */
import { EventEmitter } from 'node:events';
import {
  ErrorCode,
  LIMITS,
  type ErrorAckBody,
  type ExecutionFinished,
  type ExecutionOutput,
  type ExecutionStarted,
  type OutputChunk,
} from '@kapitan/shared';
import { Backoff } from './backoff';
import { silentLogger, type Logger } from './logger';

export type OutboxMessage =
  | { event: 'execution:started'; payload: ExecutionStarted }
  | { event: 'execution:output'; payload: ExecutionOutput }
  | { event: 'execution:finished'; payload: ExecutionFinished };

/** `err` is set when no ack came (timeout, disconnect); else `ack` is what the server answered. */
export type OutboxAckCallback = (err: Error | null, ack?: unknown) => void;

export interface OutboxTransport {
  send(message: OutboxMessage, callback: OutboxAckCallback): void;
}

export interface OutboxOptions {
  /** Bound of held bytes (encoded data plus a fixed overhead per entry). Default 64 MiB. */
  maxBytes?: number;
  /** Messages in flight at once. Default 8. */
  window?: number;
  /** Encoded chunk data per `execution:output` message. Default 512 KiB. */
  maxMessageBytes?: number;
  /** Chunks per message. Default LIMITS.chunksPerMessageMax. */
  maxChunksPerMessage?: number;
  /** Cap of the pause after a missing ack or a transient error. Default 30 s. */
  retryMaxMs?: number;
  rng?: () => number;
  logger?: Logger;
}

export const DEFAULT_OUTBOX_BYTES = 64 * 1024 * 1024;
export const DEFAULT_OUTBOX_WINDOW = 8;
export const DEFAULT_MESSAGE_BYTES = 512 * 1024;
/** Bytes accounted per entry besides its data, so many tiny chunks are bounded too. */
export const ENTRY_OVERHEAD_BYTES = 128;

/** Error ack codes after which the same events are sent again later. */
export const TRANSIENT_ACK_CODES: ReadonlySet<string> = new Set<string>([
  ErrorCode.unavailable,
  ErrorCode.tooManyRequests,
  ErrorCode.internal,
]);
/** An internal error may be a server bug that never goes away: after this many for the same events, they are dropped. */
export const MAX_INTERNAL_ERRORS = 5;

type EntryKind = 'started' | 'output' | 'finished';

interface Entry {
  kind: EntryKind;
  executionId: string;
  bytes: number;
  started?: ExecutionStarted;
  chunk?: OutputChunk;
  finished?: ExecutionFinished;
  /** Id of the in-flight message carrying it; 0 when waiting to be sent. */
  msg: number;
  acked: boolean;
  internalErrors?: number;
}

interface ExecQueue {
  executionId: string;
  entries: Entry[];
  /** Entries before `head` are acknowledged (or dropped). */
  head: number;
  /** Next entry to send; entries in [head, next) are in flight or acknowledged. */
  next: number;
}

interface InFlight {
  id: number;
  queue: ExecQueue;
  entries: Entry[];
}

export interface OutboxEvents {
  /** Held bytes reached the bound: stop producing. */
  full: [];
  /** Held bytes fell under half the bound: produce again. */
  drain: [];
  /** The `finished` event of an execution was acknowledged (or refused): nothing more is owed for it. */
  done: [executionId: string, outcome: 'acked' | 'refused'];
  /** The server refused these events for good. */
  dropped: [executionId: string, kinds: EntryKind[], error: ErrorAckBody];
  /** Nothing held any more. */
  empty: [];
}

export interface OutboxStats {
  bytes: number;
  entries: number;
  inFlight: number;
  executions: number;
  full: boolean;
  attached: boolean;
}

const encodedBytes = (s: string): number => Buffer.byteLength(JSON.stringify(s), 'utf8');

function isAckObject(a: unknown): a is { ok: boolean; error?: unknown } {
  return typeof a === 'object' && a !== null && typeof (a as { ok?: unknown }).ok === 'boolean';
}

function ackError(a: { error?: unknown }): ErrorAckBody {
  const e = a.error as Partial<ErrorAckBody> | undefined;
  return {
    code: typeof e?.code === 'string' ? e.code : 'unknown',
    message: typeof e?.message === 'string' ? e.message : 'error ack without a message',
    ...(Array.isArray(e?.details) ? { details: e.details } : {}),
  };
}

export class Outbox extends EventEmitter<OutboxEvents> {
  readonly maxBytes: number;
  readonly window: number;
  readonly maxMessageBytes: number;
  readonly maxChunksPerMessage: number;

  private readonly queues = new Map<string, ExecQueue>();
  private readonly inFlight = new Map<number, InFlight>();
  private transport: OutboxTransport | null = null;
  private epoch = 0;
  private msgIds = 0;
  private heldBytes = 0;
  private heldEntries = 0;
  private isFull = false;
  private pumpScheduled = false;
  private holdTimer: NodeJS.Timeout | null = null;
  private readonly retry: Backoff;
  private readonly logger: Logger;

  constructor(options: OutboxOptions = {}) {
    super();
    this.maxBytes = options.maxBytes ?? DEFAULT_OUTBOX_BYTES;
    this.window = Math.max(1, options.window ?? DEFAULT_OUTBOX_WINDOW);
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MESSAGE_BYTES;
    this.maxChunksPerMessage = Math.max(1, Math.min(options.maxChunksPerMessage ?? LIMITS.chunksPerMessageMax, LIMITS.chunksPerMessageMax));
    this.retry = new Backoff(options.retryMaxMs ?? 30_000, options.rng);
    this.logger = options.logger ?? silentLogger;
  }

  // ------------------------------------------------------------ producing

  enqueueStarted(payload: ExecutionStarted): void {
    this.push({ kind: 'started', executionId: payload.executionId, bytes: 200, started: payload, msg: 0, acked: false });
  }

  enqueueOutput(executionId: string, chunk: OutputChunk): void {
    this.push({ kind: 'output', executionId, bytes: encodedBytes(chunk.data), chunk, msg: 0, acked: false });
  }

  enqueueFinished(payload: ExecutionFinished): void {
    const bytes = 300 + (payload.reason ? encodedBytes(payload.reason) : 0);
    this.push({ kind: 'finished', executionId: payload.executionId, bytes, finished: payload, msg: 0, acked: false });
  }

  private push(entry: Entry): void {
    let q = this.queues.get(entry.executionId);
    if (!q) {
      q = { executionId: entry.executionId, entries: [], head: 0, next: 0 };
      this.queues.set(entry.executionId, q);
    }
    q.entries.push(entry);
    this.heldBytes += entry.bytes + ENTRY_OVERHEAD_BYTES;
    this.heldEntries++;
    if (!this.isFull && this.heldBytes >= this.maxBytes) {
      this.isFull = true;
      this.logger.warn('outbox full: pausing script output until the server acknowledges', { bytes: this.heldBytes, maxBytes: this.maxBytes });
      this.emit('full');
    }
    this.schedulePump();
  }

  // ------------------------------------------------------------ state

  get full(): boolean {
    return this.isFull;
  }
  get bytes(): number {
    return this.heldBytes;
  }
  get attached(): boolean {
    return this.transport !== null;
  }
  /** Executions with events not yet acknowledged. */
  executionIds(): string[] {
    return [...this.queues.keys()];
  }
  has(executionId: string): boolean {
    return this.queues.has(executionId);
  }
  isEmpty(): boolean {
    return this.queues.size === 0;
  }
  stats(): OutboxStats {
    return {
      bytes: this.heldBytes,
      entries: this.heldEntries,
      inFlight: this.inFlight.size,
      executions: this.queues.size,
      full: this.isFull,
      attached: this.transport !== null,
    };
  }

  /** Resolves true once nothing is held, false after `timeoutMs`. */
  whenEmpty(timeoutMs: number): Promise<boolean> {
    if (this.isEmpty()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const onEmpty = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.off('empty', onEmpty);
        resolve(false);
      }, timeoutMs);
      this.once('empty', onEmpty);
    });
  }

  // ------------------------------------------------------------ connection

  /** A connection is ready: send everything held, in order. */
  attach(transport: OutboxTransport): void {
    this.epoch++;
    this.transport = transport;
    this.resetAll();
    this.retry.reset();
    this.clearHold();
    this.schedulePump();
  }

  /** The connection is gone: whatever was in flight will be sent again after the next attach. */
  detach(): void {
    this.epoch++;
    this.transport = null;
    this.resetAll();
    this.clearHold();
  }

  /** Send the held events of one execution again from its first unacknowledged one (a repeated dispatch). */
  resend(executionId: string): void {
    const q = this.queues.get(executionId);
    if (!q) return;
    this.resetQueue(q);
    this.schedulePump();
  }

  /** Forget everything (shutdown). */
  clear(): void {
    this.detach();
    this.queues.clear();
    this.heldBytes = 0;
    this.heldEntries = 0;
    this.updateFull();
    this.emit('empty');
  }

  private resetAll(): void {
    this.inFlight.clear();
    for (const q of this.queues.values()) this.resetQueue(q);
  }

  private resetQueue(q: ExecQueue): void {
    for (const [id, m] of this.inFlight) if (m.queue === q) this.inFlight.delete(id);
    for (let i = q.head; i < q.entries.length; i++) q.entries[i]!.msg = 0;
    q.next = q.head;
  }

  // ------------------------------------------------------------ sending

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (!this.transport || this.holdTimer) return;
    let progressed = true;
    // Round-robin over executions, one message each per pass, until the window is full.
    while (progressed && this.inFlight.size < this.window && this.transport) {
      progressed = false;
      for (const q of [...this.queues.values()]) {
        if (this.inFlight.size >= this.window || !this.transport) break;
        if (this.sendNext(q)) progressed = true;
      }
    }
  }

  /** Send the next message of this execution if its ordering rules allow; true if one was sent. */
  private sendNext(q: ExecQueue): boolean {
    const { entries } = q;
    while (q.next < entries.length && entries[q.next]!.acked) q.next++;
    if (q.next >= entries.length) return false;
    const first = entries[q.next]!;
    const firstUnacked = this.firstUnacked(q);
    if (first.kind !== 'output') {
      // started/finished go alone, and only when everything before them is acknowledged
      if (firstUnacked !== q.next) return false;
      q.next++;
      if (first.kind === 'started') this.send(q, [first], { event: 'execution:started', payload: first.started! });
      else this.send(q, [first], { event: 'execution:finished', payload: first.finished! });
      return true;
    }
    // output waits until the execution's `started` is acknowledged
    const blocker = entries[firstUnacked];
    if (blocker && blocker.kind === 'started') return false;
    const batch: Entry[] = [];
    let bytes = 0;
    while (q.next < entries.length && batch.length < this.maxChunksPerMessage) {
      const e = entries[q.next]!;
      if (e.acked) {
        q.next++;
        continue;
      }
      if (e.kind !== 'output') break;
      if (batch.length > 0 && bytes + e.bytes > this.maxMessageBytes) break;
      batch.push(e);
      bytes += e.bytes;
      q.next++;
    }
    if (batch.length === 0) return false;
    this.send(q, batch, { event: 'execution:output', payload: { executionId: q.executionId, chunks: batch.map((e) => e.chunk!) } });
    return true;
  }

  private firstUnacked(q: ExecQueue): number {
    let i = q.head;
    while (i < q.entries.length && q.entries[i]!.acked) i++;
    return i;
  }

  private send(q: ExecQueue, batch: Entry[], message: OutboxMessage): void {
    const id = ++this.msgIds;
    const m: InFlight = { id, queue: q, entries: batch };
    for (const e of batch) e.msg = id;
    this.inFlight.set(id, m);
    const transport = this.transport!;
    let answered = false;
    try {
      transport.send(message, (err, ack) => {
        if (answered) return;
        answered = true;
        this.onAnswer(m, err, ack);
      });
    } catch (err) {
      answered = true;
      this.onAnswer(m, err instanceof Error ? err : new Error(String(err)), undefined);
    }
  }

  private onAnswer(m: InFlight, err: Error | null, ack: unknown): void {
    const current = this.inFlight.get(m.id) === m;
    if (!err && isAckObject(ack) && ack.ok) {
      // Stored, even if this message had been given up on: free its entries.
      if (current) this.inFlight.delete(m.id);
      this.retry.reset();
      this.release(m.queue, m.entries, 'acked');
      this.schedulePump();
      return;
    }
    if (!current) return; // a late failure of a message already given up on
    this.inFlight.delete(m.id);
    if (!err && isAckObject(ack)) {
      const error = ackError(ack);
      let giveUp = !TRANSIENT_ACK_CODES.has(error.code);
      if (error.code === ErrorCode.internal) {
        for (const e of m.entries) e.internalErrors = (e.internalErrors ?? 0) + 1;
        if (m.entries.some((e) => (e.internalErrors ?? 0) >= MAX_INTERNAL_ERRORS)) giveUp = true;
      }
      if (giveUp) {
        this.logger.error('server refused execution events; dropping them', {
          executionId: m.queue.executionId,
          events: m.entries.map((e) => e.kind),
          code: error.code,
          message: error.message,
        });
        this.release(m.queue, m.entries, 'refused', error);
        this.schedulePump();
        return;
      }
      this.backOff(m, `server answered ${error.code}: ${error.message}`);
      return;
    }
    this.backOff(m, err ? err.message : 'malformed ack');
  }

  /** Keep the events, and send them (and what follows) again after a pause. */
  private backOff(m: InFlight, why: string): void {
    this.resetQueue(m.queue);
    if (!this.transport) return;
    const delay = this.retry.next();
    this.logger.warn('execution events not acknowledged; will send them again', {
      executionId: m.queue.executionId,
      why,
      retryInMs: delay,
    });
    this.clearHold();
    this.holdTimer = setTimeout(() => {
      this.holdTimer = null;
      this.pump();
    }, delay);
  }

  private clearHold(): void {
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdTimer = null;
  }

  private release(q: ExecQueue, batch: Entry[], outcome: 'acked' | 'refused', error?: ErrorAckBody): void {
    let finished = false;
    const kinds: EntryKind[] = [];
    for (const e of batch) {
      if (e.acked) continue;
      e.acked = true;
      e.msg = 0;
      kinds.push(e.kind);
      this.heldBytes -= e.bytes + ENTRY_OVERHEAD_BYTES;
      this.heldEntries--;
      if (e.kind === 'finished') finished = true;
    }
    if (kinds.length === 0) return;
    // drop the acknowledged prefix
    while (q.head < q.entries.length && q.entries[q.head]!.acked) q.head++;
    if (q.head >= q.entries.length) {
      if (this.queues.get(q.executionId) === q) this.queues.delete(q.executionId);
      q.entries = [];
      q.head = q.next = 0;
    } else if (q.head > 1024 && q.head * 2 > q.entries.length) {
      q.entries = q.entries.slice(q.head);
      q.next = Math.max(0, q.next - q.head);
      q.head = 0;
    }
    this.updateFull();
    if (outcome === 'refused' && error) this.emit('dropped', q.executionId, kinds, error);
    if (finished) this.emit('done', q.executionId, outcome);
    if (this.queues.size === 0) this.emit('empty');
  }

  private updateFull(): void {
    if (this.isFull && this.heldBytes < this.maxBytes / 2) {
      this.isFull = false;
      this.logger.info('outbox drained: resuming script output', { bytes: this.heldBytes });
      this.emit('drain');
    }
  }
}
