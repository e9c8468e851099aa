import { Inject, Logger, OnModuleInit } from '@nestjs/common';
import { OnGatewayConnection, OnGatewayDisconnect, OnGatewayInit, WebSocketGateway, WebSocketServer } from '@nestjs/websockets';
import {
  AGENT_NAMESPACE,
  AgentEvents,
  AgentHandshakeAuthSchema,
  AgentHelloAck,
  agentToServerSchemas,
  ErrorAckBody,
  ErrorCode,
  HelloRefusal,
  parsePayload,
  Rooms,
  ServerToAgentEvents,
} from '@kapitan/shared';
import { handshakeError } from '../common/handshake-error';
import { DomainEventsService } from '../common/events.service';
import { APP_CONFIG, AppConfig } from '../config/config';
import { DrainService } from '../drain/drain.service';
import { EnrolmentService } from '../machines/enrolment.service';
import { PresenceService } from '../machines/presence.service';
import { AgentChannel, type AgentContext, type AgentNamespace, type AgentSocket } from './agent-channel';
import { AdmissionQueue } from './admission';
import { TokenBucket } from './rate-limiter';

/** Refused events in a row after which the socket is dropped. */
const MAX_STRIKES = 200;
const fail = (code: ErrorAckBody['code'], message: string): { ok: false; error: ErrorAckBody } => ({ ok: false, error: { code, message } });

/**
 * `/agent`: one socket per machine, authenticated by its credential in the
 * handshake and joined to the machine's room. This gateway owns only the
 * connection and the machine's presence (hello, heartbeat); every other
 * event goes to the handler its feature registered with `AgentChannel`,
 * after the rate limit, the schema and the ownership check (design
 * invariant 4: the machine id always comes from the socket, never from a
 * payload).
 */
@WebSocketGateway({ namespace: AGENT_NAMESPACE })
export class AgentGateway implements OnModuleInit, OnGatewayInit, OnGatewayConnection, OnGatewayDisconnect {
  private readonly logger = new Logger(AgentGateway.name);
  @WebSocketServer() private readonly ns: AgentNamespace;
  private readonly contexts = new WeakMap<AgentSocket, AgentContext>();
  /** Agent events being handled on this node: what a drain waits for before the database closes. */
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Its line at the handshake (read by specs and the health of a busy node). */
  readonly admission: AdmissionQueue;

  constructor(
    private readonly channel: AgentChannel,
    private readonly enrolment: EnrolmentService,
    private readonly presence: PresenceService,
    private readonly events: DomainEventsService,
    private readonly drain: DrainService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.admission = new AdmissionQueue({ ...config.agentAdmission, holdMs: 30_000 });
  }

  onModuleInit(): void {
    this.drain.onDrain('agents', () => this.moveAgents());
    this.events.on('machine.revoked', (e) => {
      this.revoke(Rooms.machine(e.machineId), 'this machine was revoked (deleted) in its project');
      this.logger.log({ machineId: e.machineId }, 'machine revoked: its sockets are dropped');
    });
    // The project's machines went with it (their rows cascade): its agents are told so and dropped, on every node.
    this.events.on('project.deleted', (e) => {
      this.revoke(Rooms.projectMachines(e.projectId), 'the project of this machine was deleted');
      this.logger.log({ projectId: e.projectId }, 'project deleted: the sockets of its machines are dropped');
    });
  }

  /**
   * Tell the agents in `room` why, then drop them (threat model T46). The
   * reason goes first on the same connection, so it arrives before the
   * close; an agent that missed it learns the same at its next handshake.
   */
  private revoke(room: string, reason: string): void {
    this.ns.to(room).emit(ServerToAgentEvents.revoked, { reason });
    this.ns.in(room).disconnectSockets(true);
  }

  /**
   * This node is stopping: its agents are told to move, then dropped; they
   * redial at once and the balancer takes them to another node. Presence is
   * not written per socket meanwhile (the shutdown marks whatever is still
   * held here offline in one statement; an agent that moved is held
   * elsewhere by then). What they sent before is still being handled: that
   * is waited for, so its rows are committed before the database closes; the
   * acks are lost with the socket, and the agent sends those events again
   * on its new node, where they are stored once (chunks by their sequence
   * number, transitions only from the state before them).
   */
  private async moveAgents(): Promise<void> {
    this.presence.beginDrain();
    const sockets = [...this.ns.sockets.values()];
    for (const s of sockets) s.emit(ServerToAgentEvents.draining, { reason: 'this server node is stopping: reconnect (another node takes over)' });
    for (const s of sockets) s.disconnect(true);
    const pending = [...this.inFlight];
    this.logger.log({ agents: sockets.length, eventsInFlight: pending.length }, 'drain: agents told to move; waiting for their events in flight');
    await Promise.allSettled(pending);
  }

  afterInit(ns: AgentNamespace): void {
    this.channel.attach(ns);
    ns.use((socket, next) => {
      // A connection that reached a stopping node anyway (already open to it): elsewhere, please.
      if (this.drain.draining) return next(handshakeError(ErrorCode.unavailable, 'this server node is stopping; try again (another node takes over)'));
      const auth = AgentHandshakeAuthSchema.safeParse(socket.handshake.auth);
      if (!auth.success) return next(handshakeError(ErrorCode.unauthenticated, 'a machine credential is required'));
      // In line for a turn before anything costs a read: see AdmissionQueue.
      const turn = this.admission.enter();
      const cancel = (): void => turn.cancel();
      socket.conn.once('close', cancel);
      turn.result
        .then(async (admission) => {
          socket.conn.off('close', cancel);
          if (!admission.admitted) {
            if (socket.conn.readyState !== 'open') return; // gone while it waited
            return next(handshakeError(ErrorCode.unavailable, 'this server node is admitting other agents; try again later', { retryAfterMs: admission.retryAfterMs }));
          }
          const { ticket } = admission;
          // The turn ends with the hello's answer, or with the connection.
          socket.conn.once('close', () => ticket.release());
          const identity = await this.enrolment.authenticate(auth.data.credential).catch((err: unknown) => {
            ticket.release();
            throw err;
          });
          if (!identity) {
            ticket.release();
            this.logger.warn({ address: socket.handshake.address }, 'agent handshake refused: unknown or revoked credential');
            // Final: a credential the server refused never becomes valid again, so the agent stops instead of retrying.
            return next(handshakeError(ErrorCode.machineRevoked, 'machine credential refused: this machine was revoked or deleted, or the credential is not valid; enrol it again'));
          }
          const rate = this.config.agentEventsPerSecond;
          socket.data = { ...identity, online: false, bucket: new TokenBucket(rate, rate * 10), owned: new Map(), foreign: new Map(), admission: ticket };
          // One plain listener per socket for every event, bound before the socket can send any.
          socket.onAny((event: string, ...args: unknown[]) => this.dispatch(socket, event, args));
          next();
        })
        .catch((err: unknown) => {
          this.logger.error({ err: String(err) }, 'agent handshake failed');
          next(handshakeError(ErrorCode.unavailable, 'try again later'));
        });
    });
  }

  async handleConnection(socket: AgentSocket): Promise<void> {
    const { machineId } = socket.data;
    if (!machineId) return; // refused in the middleware
    const room = Rooms.machine(machineId);
    // In the machine's room first, before anything is awaited: the agent's hello can be answered while
    // the older socket is looked up (a round trip to every node), and a dispatch sent to the room in
    // that window must reach this socket, not only the one about to be dropped.
    await socket.join([room, Rooms.projectMachines(socket.data.projectId)]);
    // The newest socket holds the machine; an older one (a half-dead connection, possibly on another node) is dropped.
    const others = (await this.ns.in(room).fetchSockets()).filter((s) => s.id !== socket.id);
    for (const s of others) s.disconnect(true);
    // Online once it said hello (one presence write per connection, with its facts).
    this.logger.log({ machineId, socketId: socket.id, replaced: others.length }, 'agent connected');
  }

  async handleDisconnect(socket: AgentSocket): Promise<void> {
    const { machineId, online } = socket.data;
    if (!machineId) return;
    if (online) await this.presence.markOffline(machineId, socket.id).catch((err: unknown) => this.logger.warn({ err: String(err) }, 'presence update failed'));
    this.logger.log({ machineId, socketId: socket.id }, 'agent disconnected');
  }

  // ---------------------------------------------------------------- every event: bucket → schema → ownership → handler

  private dispatch(socket: AgentSocket, event: string, args: unknown[]): void {
    const ack = args[args.length - 1];
    if (typeof ack !== 'function') {
      // Every agent event takes an ack (the protocol in @kapitan/shared); one without is refused unhandled.
      this.logger.warn({ machineId: socket.data.machineId, event }, 'agent event without an ack refused');
      return;
    }
    const body = args.length > 1 ? args[0] : undefined;
    const answered = this.answer(socket, event, body);
    this.inFlight.add(answered);
    const settle = (): void => void this.inFlight.delete(answered);
    answered.then(settle, settle);
    answered.then(
      (response) => (ack as (a: unknown) => void)(response),
      (err: unknown) => {
        this.logger.error({ err: String(err), event, machineId: socket.data.machineId }, 'agent event handler failed');
        (ack as (a: unknown) => void)(fail(ErrorCode.internal, 'internal error'));
      },
    );
  }

  private async answer(socket: AgentSocket, event: string, body: unknown): Promise<unknown> {
    const { bucket, machineId } = socket.data;
    if (!bucket.take()) return this.throttled(socket, event);
    if (event === AgentEvents.hello) return this.hello(socket, body);
    if (event === AgentEvents.heartbeat) return this.heartbeat(socket, body);
    const handler = this.channel.handlerFor(event);
    if (!handler) {
      this.logger.warn({ machineId, event: event.slice(0, 64) }, 'unknown agent event refused');
      return fail(ErrorCode.notFound, 'unknown event');
    }
    const p = parsePayload(agentToServerSchemas[event as keyof typeof agentToServerSchemas], body);
    if (!p.ok) {
      this.logger.warn({ machineId, event, error: p.error.message }, 'invalid agent payload refused');
      return p;
    }
    const value = p.value as never;
    if (handler.owns) {
      const id = handler.owns.id(value);
      if (!(await this.channel.owns(socket.data, handler.owns.kind, id))) {
        this.logger.warn({ machineId, [`${handler.owns.kind}Id`]: id, event }, `agent reported on an ${handler.owns.kind} that is not its own: refused`);
        return fail(ErrorCode.notFound, `no such ${handler.owns.kind} on this machine`);
      }
    }
    // Dropped while its ownership was read (revoked, replaced): nothing of a socket that is gone is stored.
    if (!socket.connected) return fail(ErrorCode.unavailable, 'disconnected');
    return handler.handle(this.context(socket), value);
  }

  private throttled(socket: AgentSocket, event: string): { ok: false; error: ErrorAckBody } {
    const { bucket, machineId } = socket.data;
    if (bucket.strikes === 1 || bucket.strikes % 50 === 0) this.logger.warn({ machineId, event: event.slice(0, 64), strikes: bucket.strikes }, 'agent throttled');
    if (bucket.strikes === MAX_STRIKES) {
      this.logger.warn({ machineId }, 'agent kept flooding past its rate limit: disconnected');
      // A moment later, so the acks already due tell the agent why.
      setTimeout(() => socket.disconnect(true), 100).unref();
    }
    return fail(ErrorCode.tooManyRequests, `more than ${this.config.agentEventsPerSecond} events per second`);
  }

  private context(socket: AgentSocket, defer?: (send: () => void) => void): AgentContext {
    const cached = defer ? undefined : this.contexts.get(socket);
    if (cached) return cached;
    const ctx: AgentContext = {
      machineId: socket.data.machineId,
      projectId: socket.data.projectId,
      emit: (event, payload) => {
        const send = (): void => void (socket.emit as (e: string, p: unknown) => boolean)(event, payload);
        if (defer) defer(send);
        else send();
      },
      release: (kind, id) => socket.data.owned.get(kind)?.delete(id),
    };
    if (!defer) this.contexts.set(socket, ctx);
    return ctx;
  }

  // ---------------------------------------------------------------- presence

  private async hello(socket: AgentSocket, body: unknown): Promise<AgentHelloAck> {
    try {
      return await this.welcome(socket, body);
    } finally {
      // Answered (or refused): the next agent in line gets its turn.
      socket.data.admission?.release();
    }
  }

  private async welcome(socket: AgentSocket, body: unknown): Promise<AgentHelloAck> {
    const p = parsePayload(agentToServerSchemas[AgentEvents.hello], body);
    if (!p.ok) {
      this.logger.warn({ machineId: socket.data.machineId, event: AgentEvents.hello, error: p.error.message }, 'invalid agent payload refused');
      return p;
    }
    const { machineId, projectId, profile } = socket.data;
    // Gone while the hello waited: its disconnect already passed, so it must not mark the machine online.
    if (!socket.connected) return fail(ErrorCode.unavailable, 'disconnected');
    socket.data.profile = null;
    socket.data.online = true;
    // What the agent claims to hold is checked against the stored rows: a claim never grants ownership (threat model T43).
    // Read while presence is written: each joins its turn's batch (a reconnect storm's hellos share the statements).
    const claimed = p.value.activeExecutionIds;
    const [, mine] = await Promise.all([
      this.presence.markOnline({ machineId, projectId }, profile, socket.id, p.value.facts, p.value.policy ?? null),
      this.channel.ownedAmong(socket.data, 'execution', claimed),
    ]);
    const refused: HelloRefusal[] = claimed.filter((id) => !mine.has(id)).map((executionId) => ({ executionId, code: ErrorCode.notFound }));
    if (refused.length) {
      this.logger.warn({ machineId, refused: refused.slice(0, 20).map((r) => r.executionId), count: refused.length }, 'agent hello named executions that are not its own: refused');
    }
    // What the features send in answer to the hello goes out after its ack, so the agent has its answer before its work.
    const after: (() => void)[] = [];
    const ctx = this.context(socket, (send) => after.push(send));
    const hello = { ...p.value, activeExecutionIds: claimed.filter((id) => mine.has(id)) };
    // The features' plans at once (their reads batch with the other hellos of the turn); what they send waits for the ack anyway.
    await Promise.all(this.channel.helloParticipants().map((participant) => participant(ctx, hello)));
    if (after.length) setImmediate(() => after.forEach((send) => send()));
    return { ok: true, machineId, serverTime: new Date().toISOString(), ...(refused.length ? { refused } : {}) };
  }

  private heartbeat(socket: AgentSocket, body: unknown): { ok: true } | { ok: false; error: ErrorAckBody } {
    const p = parsePayload(agentToServerSchemas[AgentEvents.heartbeat], body);
    if (!p.ok) {
      this.logger.warn({ machineId: socket.data.machineId, event: AgentEvents.heartbeat, error: p.error.message }, 'invalid agent payload refused');
      return p;
    }
    this.presence.heartbeat(socket.data.machineId, socket.id);
    return { ok: true };
  }
}
