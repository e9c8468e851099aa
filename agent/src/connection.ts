/**
 * The agent's one socket.io connection to the server's `/agent` namespace:
 * handshake with the machine credential, `agent:hello`, heartbeats, and a
 * reconnect loop of its own (socket.io's is off) with backoff and jitter.
 *
 * Lifecycle: start() → connect → hello (ack) → ready: the outbox is attached
 * and heartbeats run → on any loss: outbox detached, retry after
 * `nextDelay(…)`. The delay grows until a connection has stayed ready for
 * `stableAfterMs`; then the next retry starts over at 0.5–2 s. A handshake
 * refused because the credential is invalid is retried the same way
 * (capped), with an error log each time. Revocation is final: the server's
 * `agent:revoked` (sent just before it drops a revoked or deleted machine),
 * a handshake refused with `machine_revoked`, or any ack carrying that code
 * stops the connection for good and emits `revoked`. A node that is
 * stopping says `server:draining` before it drops the socket: not a fault,
 * so the next attempt goes out at once (a random 0–`drainSpreadMs`, so the
 * agents of a node do not redial in one instant) and the backoff starts over.
 *
 * Used by the agent and by simulated agents (many per process: each
 * connection has its own engine, `forceNew`).
 */
import { EventEmitter } from 'node:events';
import * as os from 'node:os';
import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import {
  AGENT_NAMESPACE,
  AgentEvents,
  ErrorCode,
  PRESENCE,
  ServerToAgentEvents,
  parsePayload,
  serverToAgentSchemas,
  type AgentHeartbeat,
  type AgentHello,
  type AgentToServerEventMap,
  type MachineFacts,
  type ReportedPolicy,
  type ServerToAgentEventMap,
} from '@kapitan/shared';
import { Backoff, DEFAULT_MAX_BACKOFF_MS } from './backoff';
import { silentLogger, type Logger } from './logger';
import type { Outbox, OutboxTransport } from './outbox';

export type AgentSocket = Socket<ServerToAgentEventMap, AgentToServerEventMap>;

export interface AgentConnectionOptions {
  /** Base URL of the server (http or https); the socket goes to its origin, namespace `/agent`. */
  serverUrl: string;
  credential: string;
  /** Facts for `agent:hello`, asked at every connect. */
  facts: () => MachineFacts | Promise<MachineFacts>;
  /** Ids for `agent:hello`: running executions and those with unacknowledged events. */
  activeExecutionIds?: () => string[];
  /** The client policy reported in `agent:hello` (absent: not reported). */
  policy?: () => ReportedPolicy;
  /** Attached while the connection is ready. */
  outbox?: Outbox;
  heartbeatIntervalMs?: number;
  /** Heartbeat payload; default: now, load average, free memory. */
  heartbeat?: () => AgentHeartbeat;
  /** Consecutive heartbeats without an ack after which the connection is dropped and redialled. Default 3. */
  heartbeatMissesBeforeReconnect?: number;
  maxBackoffMs?: number;
  /** A connection ready this long resets the backoff. Default 10 s. */
  stableAfterMs?: number;
  /** Wait for the `agent:hello` ack. Default 15 s. */
  helloTimeoutMs?: number;
  /** Wait for an ack of an outbox message before sending it again. Default 60 s. */
  ackTimeoutMs?: number;
  /** Handshake timeout. Default 20 s. */
  connectTimeoutMs?: number;
  /** After `server:draining`, redial within a random delay up to this. Default 500 ms. */
  drainSpreadMs?: number;
  rng?: () => number;
  logger?: Logger;
  /** Extra socket.io-client options (an http.Agent for a proxy, `ca` for a pinned certificate…). */
  socketOptions?: Partial<ManagerOptions & SocketOptions>;
}

export interface HelloInfo {
  machineId: string;
  serverTime: string;
}

/** Each server → agent event, with its payload parsed by its shared schema. */
export type ServerToAgentPayloads = {
  [E in keyof ServerToAgentEventMap]: [payload: Parameters<ServerToAgentEventMap[E]>[0]];
};

export interface AgentConnectionEvents extends ServerToAgentPayloads {
  /** Connected and greeted: the outbox is sending. */
  ready: [info: HelloInfo];
  /** A ready connection was lost. */
  down: [reason: string];
  /** A connection attempt failed (any reason). */
  connectError: [error: Error, refused: boolean];
  /** The server refused the credential (invalid or revoked). */
  refused: [error: Error];
  /** Final: the machine was revoked or deleted. The connection has stopped and will not retry. */
  revoked: [reason: string];
  /** The next attempt is scheduled in `delayMs`. */
  retry: [delayMs: number];
}

const SERVER_TO_AGENT_EVENTS = Object.keys(serverToAgentSchemas) as (keyof ServerToAgentEventMap)[];

const REFUSAL = /credential|revoked|unauthori[sz]ed|unauthenticated|forbidden|invalid token|not enrolled/i;

/** Does this connect_error mean the server refused the machine credential? */
export function isCredentialRefusal(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const data = (err as Error & { data?: unknown }).data;
  if (data && typeof data === 'object') {
    const code = (data as { code?: unknown }).code;
    if (code === 'unauthenticated' || code === 'forbidden') return true;
    const message = (data as { message?: unknown }).message;
    if (typeof message === 'string' && REFUSAL.test(message)) return true;
  }
  return REFUSAL.test(err.message);
}

/** `http://h:1/prefix/` → { url: 'http://h:1/agent', path: '/prefix/socket.io' }. */
export function agentSocketTarget(serverUrl: string): { url: string; path: string } {
  const u = new URL(serverUrl);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`server URL must be http(s): ${serverUrl}`);
  const prefix = u.pathname.replace(/\/+$/, '');
  return { url: u.origin + AGENT_NAMESPACE, path: `${prefix}/socket.io` };
}

export function defaultHeartbeat(): AgentHeartbeat {
  return { at: new Date().toISOString(), load1: Math.max(0, os.loadavg()[0] ?? 0), memoryFreeBytes: os.freemem() };
}

/** Does this ack (of any agent event) say the machine is revoked? */
function revokedBy(ack: unknown): string | null {
  if (!ack || typeof ack !== 'object' || (ack as { ok?: unknown }).ok !== false) return null;
  const error = (ack as { error?: { code?: unknown; message?: unknown } }).error;
  return error?.code === ErrorCode.machineRevoked ? String(error.message ?? 'machine revoked') : null;
}

export class AgentConnection extends EventEmitter<AgentConnectionEvents> {
  private socket: AgentSocket | null = null;
  private revokedReason: string | null = null;
  private isReady = false;
  private readyAt = 0;
  private lastUpMs = 0;
  private stopped = true;
  private retryTimer: NodeJS.Timeout | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private missedHeartbeats = 0;
  /** When the server last acknowledged anything on the current connection. */
  private lastAckAt = 0;
  private attempts = 0;
  /** The server said it is stopping: its disconnect is expected, the redial immediate. */
  private moving = false;
  private readonly backoff: Backoff;
  private readonly logger: Logger;
  private readonly heartbeatMs: number;
  private readonly target: { url: string; path: string };

  constructor(private readonly options: AgentConnectionOptions) {
    super();
    this.target = agentSocketTarget(options.serverUrl);
    this.backoff = new Backoff(options.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS, options.rng);
    this.logger = options.logger ?? silentLogger;
    this.heartbeatMs = options.heartbeatIntervalMs ?? PRESENCE.heartbeatIntervalMs;
  }

  get ready(): boolean {
    return this.isReady;
  }

  /** Why the server revoked this machine, once it has; the connection is stopped for good then. */
  get revoked(): string | null {
    return this.revokedReason;
  }

  /** Connection attempts made so far. */
  get attemptCount(): number {
    return this.attempts;
  }

  /**
   * Emit an agent event outside the outbox and wait for its ack, for reports
   * that heal themselves (container state is sent again whole at the next
   * connect): rejects when not ready or not acknowledged within the ack timeout.
   */
  request<E extends keyof AgentToServerEventMap>(event: E, payload: Parameters<AgentToServerEventMap[E]>[0], timeoutMs?: number): Promise<unknown> {
    const socket = this.socket;
    if (!socket || !this.isReady || !socket.connected) return Promise.reject(new Error('not connected'));
    return new Promise((resolve, reject) => {
      const s = socket.timeout(timeoutMs ?? this.options.ackTimeoutMs ?? 60_000);
      (s as unknown as { emit(event: string, payload: unknown, ack: (err: Error | null, ack?: unknown) => void): void }).emit(event, payload, (err, ack) => {
        if (err) return reject(err);
        if (socket === this.socket) this.lastAckAt = Date.now();
        const revokedNow = revokedBy(ack);
        if (revokedNow !== null) {
          reject(new Error('machine revoked'));
          return this.revoke(revokedNow);
        }
        resolve(ack);
      });
    });
  }

  start(): void {
    if (!this.stopped || this.revokedReason !== null) return;
    this.stopped = false;
    this.connect();
  }

  /** Close the connection and stop retrying. */
  stop(): void {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.teardown('stopped');
  }

  private connect(): void {
    if (this.stopped) return;
    this.attempts++;
    const socket: AgentSocket = io(this.target.url, {
      path: this.target.path,
      transports: ['websocket'],
      timeout: this.options.connectTimeoutMs ?? 20_000,
      ...this.options.socketOptions,
      auth: { credential: this.options.credential },
      reconnection: false,
      forceNew: true,
    });
    this.socket = socket;
    socket.on('connect', () => void this.onConnect(socket));
    socket.on('connect_error', (err) => this.onConnectError(socket, err));
    socket.on('disconnect', (reason) => {
      if (socket !== this.socket) return;
      const log = reason === 'io server disconnect' && !this.moving ? this.logger.warn : this.logger.info;
      log('disconnected from the server', { reason });
      this.teardown(reason);
      this.scheduleRetry();
    });
    for (const event of SERVER_TO_AGENT_EVENTS) {
      // one listener shape for every server → agent event: the payload is parsed here, once
      (socket as unknown as Socket).on(event, (raw: unknown) => {
        if (socket === this.socket) this.receive(event, raw);
      });
    }
  }

  /** Parse a server → agent payload with its shared schema; an invalid one is logged and ignored. */
  private receive<E extends keyof ServerToAgentEventMap>(event: E, raw: unknown): void {
    const parsed = parsePayload(serverToAgentSchemas[event], raw);
    if (!parsed.ok) {
      this.logger.warn(`ignoring an invalid ${event}`, { error: parsed.error.message });
      return;
    }
    if (event === ServerToAgentEvents.revoked) return this.revoke((parsed.value as { reason: string }).reason);
    if (event === ServerToAgentEvents.draining) {
      this.moving = true;
      this.logger.info('the server node is stopping: reconnecting at once', { reason: (parsed.value as { reason: string }).reason });
    }
    (this.emit as (e: E, ...args: ServerToAgentPayloads[E]) => boolean)(event, ...([parsed.value] as ServerToAgentPayloads[E]));
  }

  private onConnectError(socket: AgentSocket, err: Error): void {
    if (socket !== this.socket) return;
    const data = (err as Error & { data?: { code?: unknown; message?: unknown } }).data;
    if (data?.code === ErrorCode.machineRevoked) return this.revoke(String(data.message ?? err.message));
    const refused = isCredentialRefusal(err);
    this.teardown('connect error');
    // A busy server says when to come back: not a failure, so the backoff does not grow.
    const hint = (data as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
    const busy = data?.code === ErrorCode.unavailable && typeof hint === 'number' && Number.isFinite(hint) && hint >= 0;
    if (busy) {
      const delay = this.scheduleRetry(hint as number);
      this.logger.info('the server is busy admitting other agents: trying again when it said', { retryInMs: delay });
      this.emit('connectError', err, false);
      return;
    }
    const delay = this.scheduleRetry();
    if (refused) {
      this.logger.error('the server refused this machine credential (revoked or invalid); re-enrol the machine. Retrying with backoff', {
        error: err.message,
        retryInMs: delay,
      });
    } else {
      this.logger.warn('could not connect to the server', { error: err.message, retryInMs: delay });
    }
    this.emit('connectError', err, refused);
    if (refused) this.emit('refused', err);
  }

  private async onConnect(socket: AgentSocket): Promise<void> {
    if (socket !== this.socket) return;
    let facts: MachineFacts;
    try {
      facts = await this.options.facts();
    } catch (err) {
      this.logger.error('could not collect machine facts', { err });
      return this.dropAndRetry(socket, 'facts unavailable');
    }
    if (socket !== this.socket || !socket.connected) return;
    const policy = this.options.policy?.();
    const hello: AgentHello = { facts, activeExecutionIds: (this.options.activeExecutionIds?.() ?? []).slice(0, 10_000), ...(policy ? { policy } : {}) };
    socket.timeout(this.options.helloTimeoutMs ?? 15_000).emit(AgentEvents.hello, hello, (err, ack) => {
      if (socket !== this.socket) return;
      if (err) {
        this.logger.warn('agent:hello was not acknowledged', { error: err.message });
        return this.dropAndRetry(socket, 'hello not acknowledged');
      }
      const revokedNow = revokedBy(ack);
      if (revokedNow !== null) return this.revoke(revokedNow);
      if (!ack || ack.ok !== true) {
        const error = ack && ack.ok === false ? ack.error : { code: 'unknown', message: 'malformed hello ack' };
        this.logger.error('the server refused agent:hello', { code: error.code, message: error.message });
        return this.dropAndRetry(socket, 'hello refused');
      }
      this.isReady = true;
      this.readyAt = Date.now();
      this.logger.info('connected to the server', { machineId: ack.machineId, attempt: this.attempts });
      this.options.outbox?.attach(this.transport(socket));
      this.startHeartbeat(socket);
      this.emit('ready', { machineId: ack.machineId, serverTime: ack.serverTime });
    });
  }

  private transport(socket: AgentSocket): OutboxTransport {
    const ackTimeout = this.options.ackTimeoutMs ?? 60_000;
    return {
      send: (message, callback) => {
        if (socket !== this.socket || !socket.connected) {
          callback(new Error('not connected'));
          return;
        }
        const s = socket.timeout(ackTimeout);
        const cb = (err: Error | null | undefined, ack?: unknown): void => {
          if (!err && socket === this.socket) this.lastAckAt = Date.now();
          const revokedNow = err ? null : revokedBy(ack);
          // To the outbox as a missing ack, not as a refusal: it keeps what it holds (and its spool) as it is.
          if (revokedNow !== null) {
            callback(new Error('machine revoked'));
            return this.revoke(revokedNow);
          }
          callback(err ?? null, ack);
        };
        // every outbox message is an agent → server event of the shared map, with its own payload type
        (s as unknown as { emit(event: string, payload: unknown, ack: typeof cb): void }).emit(message.event, message.payload, cb);
      },
    };
  }

  private startHeartbeat(socket: AgentSocket): void {
    this.missedHeartbeats = 0;
    const limit = this.options.heartbeatMissesBeforeReconnect ?? 3;
    const payload = this.options.heartbeat ?? defaultHeartbeat;
    this.heartbeatTimer = setInterval(() => {
      if (socket !== this.socket || !this.isReady) return;
      const sentAt = Date.now();
      socket.timeout(this.heartbeatMs).emit(AgentEvents.heartbeat, payload(), (err, ack) => {
        if (socket !== this.socket) return;
        if (err) {
          // Other acks meanwhile: the server is there, the heartbeat just queued behind bulk output.
          if (this.lastAckAt >= sentAt) return;
          this.missedHeartbeats++;
          this.logger.warn('heartbeat not acknowledged', { missed: this.missedHeartbeats });
          if (this.missedHeartbeats >= limit) this.dropAndRetry(socket, 'heartbeats not acknowledged');
          return;
        }
        this.missedHeartbeats = 0;
        this.lastAckAt = Date.now();
        const revokedNow = revokedBy(ack);
        if (revokedNow !== null) return this.revoke(revokedNow);
        if (ack && ack.ok === false) this.logger.warn('heartbeat refused', { code: ack.error.code, message: ack.error.message });
      });
    }, this.heartbeatMs);
  }

  /** Final: stop for good and say why, once. */
  private revoke(reason: string): void {
    if (this.revokedReason !== null) return;
    this.revokedReason = reason;
    this.logger.error('the server revoked this machine: stopping for good (enrol it again to reconnect)', { reason });
    this.stop();
    this.emit('revoked', reason);
  }

  /** Drop the current socket and dial again (backoff as after any drop), so the next hello tells what changed (a reloaded client policy). */
  redial(reason: string): void {
    if (this.stopped || !this.socket) return;
    this.logger.info('reconnecting', { reason });
    this.dropAndRetry(this.socket, reason);
  }

  private dropAndRetry(socket: AgentSocket, reason: string): void {
    if (socket !== this.socket) return;
    this.teardown(reason);
    this.scheduleRetry();
  }

  private teardown(reason: string): void {
    const socket = this.socket;
    this.socket = null;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
    if (this.isReady) {
      this.isReady = false;
      this.lastUpMs = Date.now() - this.readyAt;
      this.options.outbox?.detach();
      this.emit('down', reason);
    }
    if (socket) {
      socket.removeAllListeners();
      socket.disconnect();
      socket.io.engine?.close();
    }
  }

  /** @param retryAfterMs the server's own hint: waited (spread ±50 %) instead of the next backoff step. */
  private scheduleRetry(retryAfterMs?: number): number {
    if (this.stopped) return 0;
    if (this.retryTimer) return this.backoff.current; // already scheduled
    if (this.lastUpMs >= (this.options.stableAfterMs ?? 10_000)) this.backoff.reset();
    this.lastUpMs = 0;
    let delay: number;
    if (retryAfterMs !== undefined) {
      delay = Math.round(Math.min(retryAfterMs, this.options.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS) * (0.5 + (this.options.rng ?? Math.random)()));
    } else if (this.moving) {
      this.moving = false;
      this.backoff.reset();
      delay = Math.round((this.options.rng ?? Math.random)() * (this.options.drainSpreadMs ?? 500));
    } else {
      delay = this.backoff.next();
    }
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
    this.emit('retry', delay);
    return delay;
  }
}
