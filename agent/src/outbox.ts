/**
 * The outbox: everything the agent owes the server, kept in order until the
 * server acknowledges it as stored (design invariant 2), and
 * bounded in bytes (design invariant 7). It carries any agent → server stream: a stream is a key
 * (an execution id, a container id, a download id…) of one
 * {@link OutboxChannel}, which says how its entries become events. Today's
 * channel is the executions' (execution-channel.ts: `execution:started`,
 * `execution:output` chunks, `execution:finished`).
 *
 * - Per stream, entries leave in the order they were queued: the `open`
 *   entry first and alone, then items batched into messages (at most
 *   LIMITS.chunksPerMessageMax items and `maxMessageBytes` of encoded data
 *   each) right behind it, without waiting for its ack, then the `close`
 *   entry once every earlier entry of that stream is acknowledged. A channel
 *   may do without `open`.
 * - Up to `window` messages are in flight at once (all streams together).
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
 * - With a {@link OutboxSpool}, every entry is also appended to disk as it is
 *   queued and forgotten there once acknowledged, so a crash of the agent
 *   loses nothing it had read: `restore` queues what a previous process left.
 *
 * The outbox knows nothing about sockets: `attach` gives it a transport (a
 * connected socket), `detach` takes it away. It is shared by the agent and by
 * simulated agents.
 */
import { EventEmitter } from 'node:events';
import type { z } from 'zod';
import { ErrorCode, LIMITS, type AgentToServerEventMap, type ErrorAckBody } from '@kapitan/shared';
import { Backoff } from './backoff';
import { silentLogger, type Logger } from './logger';

type AgentEventName = keyof AgentToServerEventMap;
/** One agent → server event with its payload, as the transport emits it. */
export type OutboxMessage = {
  [E in AgentEventName]: { event: E; payload: Parameters<AgentToServerEventMap[E]>[0] };
}[AgentEventName];

/** `err` is set when no ack came (timeout, disconnect); else `ack` is what the server answered. */
export type OutboxAckCallback = (err: Error | null, ack?: unknown) => void;

export interface OutboxTransport {
  send(message: OutboxMessage, callback: OutboxAckCallback): void;
}

export type EntryPhase = 'open' | 'item' | 'close';

/** How the entries of one kind of stream become events. */
export interface OutboxChannel<Open = unknown, Item = unknown, Close = unknown> {
  /** Name of the channel (spool directory, logs); unique among channels. */
  readonly name: string;
  /** What each phase is called in logs and in `dropped` (e.g. started / output / finished). */
  readonly labels: Record<EntryPhase, string>;
  /** Schemas of the entries, to read a spool back. */
  readonly schemas: { open?: z.ZodType<Open>; item: z.ZodType<Item>; close: z.ZodType<Close> };
  openMessage?(key: string, value: Open): OutboxMessage;
  itemsMessage(key: string, items: Item[]): OutboxMessage;
  closeMessage(key: string, value: Close): OutboxMessage;
  /** Bytes an entry accounts for (roughly its encoded size), towards the bound and the message size. */
  bytes(phase: EntryPhase, value: unknown): number;
}
// Channels are stored side by side whatever their value types.
type AnyChannel = OutboxChannel<any, any, any>;

/** Durable copy of the outbox (spool.ts); every call is synchronous and cheap. */
export interface OutboxSpool {
  /** Entry number `ord` of a stream was queued. */
  append(channel: string, key: string, ord: number, phase: EntryPhase, value: unknown): void;
  /** Every entry of the stream up to `ord` is acknowledged (or refused). */
  acked(channel: string, key: string, ord: number): void;
  /** Nothing more is owed for the stream. */
  remove(channel: string, key: string): void;
  /** What a previous process left, per stream, in order; `commitRestore` then discards the old copy. */
  load(): SpooledStream[];
  commitRestore(): void;
  close(): void;
}

export interface SpooledStream {
  channel: string;
  key: string;
  /** In order; `ord` is the entry's number in its stream, kept when it is queued again. */
  entries: { ord: number; phase: EntryPhase; value: unknown }[];
}

/** A stream queued again by `restore`. */
export interface RestoredStream {
  channel: string;
  key: string;
  opened: boolean;
  closed: boolean;
  /** The last item queued, if any. */
  lastItem: unknown;
  items: number;
}

export interface OutboxOptions {
  /** Bound of held bytes (encoded data plus a fixed overhead per entry). Default 64 MiB. */
  maxBytes?: number;
  /** Messages in flight at once. Default 8. */
  window?: number;
  /** Encoded item data per message. Default 512 KiB. */
  maxMessageBytes?: number;
  /** Items per message. Default LIMITS.chunksPerMessageMax. */
  maxChunksPerMessage?: number;
  /** Cap of the pause after a missing ack or a transient error. Default 30 s. */
  retryMaxMs?: number;
  /** Durable copy of what is held; default none (memory only). */
  spool?: OutboxSpool;
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

interface Entry {
  phase: EntryPhase;
  value: unknown;
  bytes: number;
  /** Number of the entry in its stream (this process), for the spool. */
  ord: number;
  /** Id of the in-flight message carrying it; 0 when waiting to be sent. */
  msg: number;
  acked: boolean;
  internalErrors?: number;
}

interface StreamQueue {
  id: string;
  channel: AnyChannel;
  key: string;
  entries: Entry[];
  /** Entries before `head` are acknowledged (or dropped). */
  head: number;
  /** Next entry to send; entries in [head, next) are in flight or acknowledged. */
  next: number;
}

interface InFlight {
  id: number;
  queue: StreamQueue;
  entries: Entry[];
}

export interface OutboxEvents {
  /** Held bytes reached the bound: stop producing. */
  full: [];
  /** Held bytes fell under half the bound: produce again. */
  drain: [];
  /** The `close` entry of a stream was acknowledged (or refused): nothing more is owed for it. */
  done: [key: string, outcome: 'acked' | 'refused', channel: string];
  /** The server refused these entries for good (their channel's labels). */
  dropped: [key: string, kinds: string[], error: ErrorAckBody, channel: string];
  /** Nothing held any more. */
  empty: [];
}

export interface OutboxStats {
  bytes: number;
  entries: number;
  inFlight: number;
  /** Streams with entries held. */
  executions: number;
  full: boolean;
  attached: boolean;
}

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

const streamId = (channel: string, key: string): string => `${channel}\u0000${key}`;

export class Outbox extends EventEmitter<OutboxEvents> {
  readonly maxBytes: number;
  readonly window: number;
  readonly maxMessageBytes: number;
  readonly maxChunksPerMessage: number;

  private readonly queues = new Map<string, StreamQueue>();
  /** Next entry number per stream; outlives a queue drained between bursts, so spooled numbers only grow. */
  private readonly ords = new Map<string, number>();
  private readonly inFlight = new Map<number, InFlight>();
  private transport: OutboxTransport | null = null;
  private msgIds = 0;
  private heldBytes = 0;
  private heldEntries = 0;
  private isFull = false;
  private pumpScheduled = false;
  private holdTimer: NodeJS.Timeout | null = null;
  private readonly retry: Backoff;
  private readonly logger: Logger;
  private readonly spool: OutboxSpool | null;

  constructor(options: OutboxOptions = {}) {
    super();
    this.maxBytes = options.maxBytes ?? DEFAULT_OUTBOX_BYTES;
    this.window = Math.max(1, options.window ?? DEFAULT_OUTBOX_WINDOW);
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MESSAGE_BYTES;
    this.maxChunksPerMessage = Math.max(1, Math.min(options.maxChunksPerMessage ?? LIMITS.chunksPerMessageMax, LIMITS.chunksPerMessageMax));
    this.retry = new Backoff(options.retryMaxMs ?? 30_000, options.rng);
    this.logger = options.logger ?? silentLogger;
    this.spool = options.spool ?? null;
  }

  // ------------------------------------------------------------ producing

  /** The first entry of a stream (sent alone, before its items). */
  open<O>(channel: OutboxChannel<O, any, any>, key: string, value: O): void {
    this.push(channel, key, 'open', value);
  }

  add<I>(channel: OutboxChannel<any, I, any>, key: string, item: I): void {
    this.push(channel, key, 'item', item);
  }

  /** The last entry of a stream (sent once all before it is acknowledged). */
  close<C>(channel: OutboxChannel<any, any, C>, key: string, value: C): void {
    this.push(channel, key, 'close', value);
  }

  private push(channel: AnyChannel, key: string, phase: EntryPhase, value: unknown, restoredOrd?: number): void {
    const id = streamId(channel.name, key);
    let q = this.queues.get(id);
    if (!q) {
      q = { id, channel, key, entries: [], head: 0, next: 0 };
      this.queues.set(id, q);
    }
    const ord = restoredOrd ?? this.ords.get(id) ?? 0;
    this.ords.set(id, Math.max(ord + 1, this.ords.get(id) ?? 0));
    const entry: Entry = { phase, value, bytes: channel.bytes(phase, value), ord, msg: 0, acked: false };
    // disk first: once queued, the entry survives a crash of this process
    this.spool?.append(channel.name, key, entry.ord, phase, value);
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

  /**
   * Queue what the spool holds from a previous process (call once, before
   * anything else is queued). Streams of unknown channels and entries that
   * do not parse are logged and skipped.
   */
  restore(channels: readonly AnyChannel[]): RestoredStream[] {
    if (!this.spool) return [];
    const byName = new Map(channels.map((c) => [c.name, c]));
    const restored: RestoredStream[] = [];
    for (const s of this.spool.load()) {
      const channel = byName.get(s.channel);
      if (!channel) {
        this.logger.warn('spooled stream of an unknown kind: discarded', { channel: s.channel, key: s.key });
        continue;
      }
      const r: RestoredStream = { channel: s.channel, key: s.key, opened: false, closed: false, lastItem: undefined, items: 0 };
      for (const e of s.entries) {
        const schema = e.phase === 'open' ? channel.schemas.open : e.phase === 'item' ? channel.schemas.item : channel.schemas.close;
        const parsed = schema?.safeParse(e.value);
        if (!parsed?.success) {
          this.logger.warn('unreadable spooled entry: skipped', { channel: s.channel, key: s.key, phase: e.phase });
          continue;
        }
        this.push(channel, s.key, e.phase, parsed.data, e.ord);
        if (e.phase === 'open') r.opened = true;
        else if (e.phase === 'close') r.closed = true;
        else {
          r.items++;
          r.lastItem = parsed.data;
        }
      }
      restored.push(r);
    }
    this.spool.commitRestore();
    return restored;
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
  /** Keys of the streams of `channel` with entries not yet acknowledged. */
  keys(channel: AnyChannel): string[] {
    const out: string[] = [];
    for (const q of this.queues.values()) if (q.channel.name === channel.name) out.push(q.key);
    return out;
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
    this.transport = transport;
    this.resetAll();
    this.retry.reset();
    this.clearHold();
    this.schedulePump();
  }

  /** The connection is gone: whatever was in flight will be sent again after the next attach. */
  detach(): void {
    this.transport = null;
    this.resetAll();
    this.clearHold();
  }

  /** Send the held entries of one stream again from its first unacknowledged one (a repeated dispatch). */
  resend(channel: AnyChannel, key: string): void {
    const q = this.queues.get(streamId(channel.name, key));
    if (!q) return;
    this.resetQueue(q);
    this.schedulePump();
  }

  /**
   * Forget everything held in memory (shutdown, a simulated crash). The
   * spool keeps its copy for the next process and is closed.
   */
  clear(): void {
    this.detach();
    this.queues.clear();
    this.ords.clear();
    this.heldBytes = 0;
    this.heldEntries = 0;
    this.spool?.close();
    this.updateFull();
    this.emit('empty');
  }

  private resetAll(): void {
    this.inFlight.clear();
    for (const q of this.queues.values()) this.resetQueue(q);
  }

  private resetQueue(q: StreamQueue): void {
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
    // Round-robin over streams, one message each per pass, until the window is full.
    while (progressed && this.inFlight.size < this.window && this.transport) {
      progressed = false;
      for (const q of [...this.queues.values()]) {
        if (this.inFlight.size >= this.window || !this.transport) break;
        if (this.sendNext(q)) progressed = true;
      }
    }
  }

  /** Send the next message of this stream if its ordering rules allow; true if one was sent. */
  private sendNext(q: StreamQueue): boolean {
    const { entries, channel } = q;
    while (q.next < entries.length && entries[q.next]!.acked) q.next++;
    if (q.next >= entries.length) return false;
    const first = entries[q.next]!;
    const firstUnacked = this.firstUnacked(q);
    if (first.phase !== 'item') {
      // open/close go alone, and only when everything before them is acknowledged
      if (firstUnacked !== q.next) return false;
      q.next++;
      if (first.phase === 'open') {
        if (!channel.openMessage) throw new Error(`channel ${channel.name} has no open message`);
        this.send(q, [first], channel.openMessage(q.key, first.value));
      } else this.send(q, [first], channel.closeMessage(q.key, first.value));
      return true;
    }
    // Items follow their open as soon as it is sent, not acknowledged: waiting for the
    // server's answer to `started` put a whole round trip before the first output. The
    // open still leaves first (q.next passed it), and the close still waits for every ack.
    const batch: Entry[] = [];
    let bytes = 0;
    while (q.next < entries.length && batch.length < this.maxChunksPerMessage) {
      const e = entries[q.next]!;
      if (e.acked) {
        q.next++;
        continue;
      }
      if (e.phase !== 'item') break;
      if (batch.length > 0 && bytes + e.bytes > this.maxMessageBytes) break;
      batch.push(e);
      bytes += e.bytes;
      q.next++;
    }
    if (batch.length === 0) return false;
    this.send(
      q,
      batch,
      channel.itemsMessage(
        q.key,
        batch.map((e) => e.value),
      ),
    );
    return true;
  }

  private firstUnacked(q: StreamQueue): number {
    let i = q.head;
    while (i < q.entries.length && q.entries[i]!.acked) i++;
    return i;
  }

  private send(q: StreamQueue, batch: Entry[], message: OutboxMessage): void {
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
        this.logger.error('server refused agent events; dropping them', {
          channel: m.queue.channel.name,
          key: m.queue.key,
          events: m.entries.map((e) => m.queue.channel.labels[e.phase]),
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

  /** Keep the entries, and send them (and what follows) again after a pause. */
  private backOff(m: InFlight, why: string): void {
    this.resetQueue(m.queue);
    if (!this.transport) return;
    const delay = this.retry.next();
    this.logger.warn('agent events not acknowledged; will send them again', {
      channel: m.queue.channel.name,
      key: m.queue.key,
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

  private release(q: StreamQueue, batch: Entry[], outcome: 'acked' | 'refused', error?: ErrorAckBody): void {
    let closed = false;
    const kinds: string[] = [];
    for (const e of batch) {
      if (e.acked) continue;
      e.acked = true;
      e.msg = 0;
      kinds.push(q.channel.labels[e.phase]);
      this.heldBytes -= e.bytes + ENTRY_OVERHEAD_BYTES;
      this.heldEntries--;
      if (e.phase === 'close') closed = true;
    }
    if (kinds.length === 0) return;
    // drop the acknowledged prefix
    const headBefore = q.head;
    while (q.head < q.entries.length && q.entries[q.head]!.acked) q.head++;
    const stillQueued = this.queues.get(q.id) === q;
    if (q.head >= q.entries.length) {
      if (stillQueued) {
        this.queues.delete(q.id);
        if (q.entries.some((e) => e.phase === 'close')) {
          this.ords.delete(q.id);
          this.spool?.remove(q.channel.name, q.key);
        } else if (q.head > headBefore) {
          this.spool?.acked(q.channel.name, q.key, q.entries[q.head - 1]!.ord);
        }
      }
      q.entries = [];
      q.head = q.next = 0;
    } else {
      if (q.head > headBefore && stillQueued) this.spool?.acked(q.channel.name, q.key, q.entries[q.head - 1]!.ord);
      if (q.head > 1024 && q.head * 2 > q.entries.length) {
        q.entries = q.entries.slice(q.head);
        q.next = Math.max(0, q.next - q.head);
        q.head = 0;
      }
    }
    this.updateFull();
    if (outcome === 'refused' && error) this.emit('dropped', q.key, kinds, error, q.channel.name);
    if (closed) this.emit('done', q.key, outcome, q.channel.name);
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
