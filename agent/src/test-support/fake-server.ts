/**
 * A small in-process stand-in for the Kapitan server's `/agent` namespace:
 * checks the credential in the handshake, validates every event with the
 * shared schemas, stores output once per (execution, seq), and lets tests
 * decide how (and whether) to acknowledge.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server, type Namespace, type Socket } from 'socket.io';
import {
  AGENT_NAMESPACE,
  AgentEvents,
  EnrolRequestSchema,
  ErrorCode,
  ServerToAgentEvents,
  agentToServerSchemas,
  parsePayload,
  type AgentHello,
  type AgentToServerEventMap,
  type ExecutionDispatch,
  type ExecutionFinished,
  type ExecutionStarted,
  type OutputChunk,
  type ServerToAgentEventMap,
} from '@kapitan/shared';

type EventName = keyof AgentToServerEventMap;
/** What to answer: an ack object, 'drop' to send no ack at all, 'hold' to process it once `releaseHeld()` is called. */
export type AckDecision =
  | { ok: true; [k: string]: unknown }
  | { ok: false; error: { code: string; message: string } }
  | 'drop'
  | 'hold';
export type AckPolicy = (event: EventName, payload: unknown, socket: ServerSocket) => AckDecision | undefined;

export type ServerSocket = Socket<AgentToServerEventMap, ServerToAgentEventMap>;

export interface Received {
  event: EventName;
  payload: unknown;
  credential: string;
  at: number;
}

export class FakeKapitanServer {
  readonly credentials = new Map<string, string>(); // credential → machineId
  readonly received: Received[] = [];
  readonly connectErrors: string[] = [];
  readonly hellos: AgentHello[] = [];
  readonly started = new Map<string, ExecutionStarted[]>();
  readonly chunks = new Map<string, Map<number, OutputChunk>>();
  readonly finished = new Map<string, ExecutionFinished[]>();
  heartbeats = 0;
  handshakes = 0;
  /** Decide acks (default: ok for everything valid). */
  ackPolicy: AckPolicy | null = null;
  private held: (() => void)[] = [];

  private constructor(
    readonly http: HttpServer,
    readonly io: Server,
    readonly nsp: Namespace<AgentToServerEventMap, ServerToAgentEventMap>,
    readonly url: string,
  ) {}

  /** Enrolment tokens accepted by POST /api/agent/enrol → project id. */
  readonly enrolTokens = new Map<string, string>();
  readonly enrolments: { token: string; body: unknown; machineId: string; credential: string }[] = [];

  static async start(port = 0): Promise<FakeKapitanServer> {
    let self: FakeKapitanServer | undefined;
    const http = createServer((req, res) => void self?.onHttp(req, res));
    const io = new Server(http, { maxHttpBufferSize: 1024 * 1024, transports: ['websocket'] });
    const nsp = io.of(AGENT_NAMESPACE) as unknown as Namespace<AgentToServerEventMap, ServerToAgentEventMap>;
    await new Promise<void>((resolve) => http.listen(port, '127.0.0.1', resolve));
    const addr = http.address() as AddressInfo;
    const server = (self = new FakeKapitanServer(http, io, nsp, `http://127.0.0.1:${addr.port}`));
    server.wire();
    return server;
  }

  private async onHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'POST' || req.url !== '/api/agent/enrol') return send(404, { statusCode: 404, code: 'not_found', message: 'Not Found' });
    const parts: Buffer[] = [];
    for await (const p of req) parts.push(p as Buffer);
    let json: unknown;
    try {
      json = JSON.parse(Buffer.concat(parts).toString('utf8'));
    } catch {
      return send(400, { statusCode: 400, code: 'validation_failed', message: 'malformed JSON' });
    }
    const parsed = EnrolRequestSchema.safeParse(json);
    if (!parsed.success) return send(400, { statusCode: 400, code: 'validation_failed', message: parsed.error.issues[0]?.message ?? 'invalid' });
    const projectId = this.enrolTokens.get(parsed.data.token);
    if (!projectId) return send(401, { statusCode: 401, code: 'enrolment_refused', message: 'enrolment token is invalid, expired or used up' });
    const machineId = randomUUID();
    const credential = 'mc_' + randomBytes(24).toString('base64url');
    this.addMachine(credential, machineId);
    this.enrolments.push({ token: parsed.data.token, body: json, machineId, credential });
    send(201, { machineId, projectId, credential });
  }

  get port(): number {
    return (this.http.address() as AddressInfo).port;
  }

  addMachine(credential: string, machineId: string): void {
    this.credentials.set(credential, machineId);
  }

  /** Revoke: the handshake is refused from now on and connected sockets are dropped. */
  revoke(credential: string): void {
    this.credentials.delete(credential);
    for (const s of this.nsp.sockets.values()) if (s.data.credential === credential) s.disconnect(true);
  }

  /** Credentials the server revoked for good: their handshake is refused with the final `machine_revoked`. */
  readonly revokedForGood = new Set<string>();

  /** Revoke for good, as the real server does: `agent:revoked` with the reason, then the drop. */
  revokeForGood(credential: string, reason: string): void {
    this.credentials.delete(credential);
    this.revokedForGood.add(credential);
    for (const s of this.nsp.sockets.values()) {
      if (s.data.credential !== credential) continue;
      s.emit(ServerToAgentEvents.revoked, { reason });
      s.disconnect(true);
    }
  }

  /** Handshakes still to be refused as a busy server does (`unavailable` with `retryAfterMs`). */
  private busy = { times: 0, retryAfterMs: 0 };

  /** Refuse the next `times` handshakes as a node busy admitting other agents: come back in `retryAfterMs`. */
  busyFor(times: number, retryAfterMs: number): void {
    this.busy = { times, retryAfterMs };
  }

  private wire(): void {
    this.nsp.use((socket, next) => {
      this.handshakes++;
      const credential = (socket.handshake.auth as { credential?: unknown })?.credential;
      if (this.busy.times > 0) {
        this.busy.times--;
        const err = new Error(ErrorCode.unavailable) as Error & { data?: unknown };
        err.data = { code: ErrorCode.unavailable, message: 'this server node is admitting other agents; try again later', retryAfterMs: this.busy.retryAfterMs };
        this.connectErrors.push(err.message);
        return next(err);
      }
      if (typeof credential === 'string' && this.revokedForGood.has(credential)) {
        const err = new Error(ErrorCode.machineRevoked) as Error & { data?: unknown };
        err.data = { code: ErrorCode.machineRevoked, message: 'this machine was revoked or deleted; enrol it again' };
        this.connectErrors.push(err.message);
        return next(err);
      }
      if (typeof credential !== 'string' || !this.credentials.has(credential)) {
        const err = new Error('invalid or revoked machine credential') as Error & { data?: unknown };
        err.data = { code: 'unauthenticated', message: 'invalid or revoked machine credential' };
        this.connectErrors.push(err.message);
        return next(err);
      }
      socket.data.credential = credential;
      next();
    });
    this.nsp.on('connection', (socket: ServerSocket) => {
      const events = Object.keys(agentToServerSchemas) as EventName[];
      for (const event of events) {
        socket.on(event, ((payload: unknown, ack: unknown) => this.onEvent(socket, event, payload, ack)) as never);
      }
    });
  }

  private onEvent(socket: ServerSocket, event: EventName, payload: unknown, ack: unknown): void {
    const credential = socket.data.credential as string;
    this.received.push({ event, payload, credential, at: Date.now() });
    if (typeof ack !== 'function') return;
    const answer = ack as (a: unknown) => void;
    const parsed = parsePayload(agentToServerSchemas[event], payload);
    if (!parsed.ok) return answer({ ok: false, error: parsed.error });
    const decision = this.ackPolicy?.(event, parsed.value, socket);
    if (decision === 'drop') {
      return; // no ack: as if lost
    }
    if (decision === 'hold') {
      this.held.push(() => this.handle(event, parsed.value, credential, answer));
      return;
    }
    if (decision && decision.ok === false) return answer(decision);
    this.handle(event, parsed.value, credential, answer);
  }

  /** Events whose processing and ack are held. */
  get heldCount(): number {
    return this.held.length;
  }

  /** Process (store and ack) the held events. */
  releaseHeld(): number {
    const held = this.held;
    this.held = [];
    for (const h of held) h();
    return held.length;
  }

  private handle(event: EventName, value: unknown, credential: string, answer: (a: unknown) => void): void {
    const parsed = { value };
    switch (event) {
      case AgentEvents.hello:
        this.hellos.push(parsed.value as AgentHello);
        return answer({ ok: true, machineId: this.credentials.get(credential), serverTime: new Date().toISOString() });
      case AgentEvents.heartbeat:
        this.heartbeats++;
        return answer({ ok: true });
      case AgentEvents.executionStarted: {
        const s = parsed.value as ExecutionStarted;
        this.started.set(s.executionId, [...(this.started.get(s.executionId) ?? []), s]);
        return answer({ ok: true });
      }
      case AgentEvents.executionOutput: {
        const o = parsed.value as { executionId: string; chunks: OutputChunk[] };
        const m = this.chunks.get(o.executionId) ?? new Map<number, OutputChunk>();
        this.chunks.set(o.executionId, m);
        for (const c of o.chunks) if (!m.has(c.seq)) m.set(c.seq, c);
        return answer({ ok: true, stored: o.chunks.length });
      }
      case AgentEvents.executionFinished: {
        const f = parsed.value as ExecutionFinished;
        this.finished.set(f.executionId, [...(this.finished.get(f.executionId) ?? []), f]);
        return answer({ ok: true });
      }
    }
  }

  /** Stored output of an execution, in sequence order (asserts no gap). */
  log(executionId: string): { text: string; chunks: OutputChunk[]; gaps: number } {
    const m = this.chunks.get(executionId) ?? new Map<number, OutputChunk>();
    const chunks = [...m.values()].sort((a, b) => a.seq - b.seq);
    let gaps = 0;
    chunks.forEach((c, i) => {
      if (c.seq !== i) gaps++;
    });
    return { text: chunks.map((c) => c.data).join(''), chunks, gaps };
  }

  /** Raw count of received output chunks with this seq (to see resends). */
  receivedChunks(executionId: string): OutputChunk[] {
    return this.received
      .filter((r) => r.event === AgentEvents.executionOutput && (r.payload as { executionId: string }).executionId === executionId)
      .flatMap((r) => (r.payload as { chunks: OutputChunk[] }).chunks);
  }

  sockets(): ServerSocket[] {
    return [...this.nsp.sockets.values()];
  }

  dispatch(d: ExecutionDispatch): void {
    this.nsp.emit(ServerToAgentEvents.dispatch, d);
  }

  cancel(executionId: string): void {
    this.nsp.emit(ServerToAgentEvents.cancel, { executionId });
  }

  /** As a stopping node does: `server:draining` to every agent, then the drop. */
  drainAll(reason = 'node stopping'): void {
    for (const s of this.sockets()) {
      s.emit(ServerToAgentEvents.draining, { reason });
      s.disconnect(true);
    }
  }

  /** Drop every agent connection (server side). */
  kickAll(): void {
    for (const s of this.sockets()) s.disconnect(true);
  }

  async close(): Promise<void> {
    this.io.disconnectSockets(true);
    await new Promise<void>((resolve) => this.io.close(() => resolve()));
    this.http.closeAllConnections?.();
  }
}
