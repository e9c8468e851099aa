import { Inject, Logger } from '@nestjs/common';
import { OnEvent } from '@nestjs/event-emitter';
import {
  ConnectedSocket,
  MessageBody,
  OnGatewayConnection,
  OnGatewayDisconnect,
  OnGatewayInit,
  SubscribeMessage,
  WebSocketGateway,
  WebSocketServer,
} from '@nestjs/websockets';
import {
  Ack,
  AGENT_NAMESPACE,
  AgentEvents,
  AgentHandshakeAuthSchema,
  AgentHelloAck,
  agentToServerSchemas,
  AgentToServerEventMap,
  ErrorAckBody,
  ErrorCode,
  ExecutionOutputAck,
  parsePayload,
  Rooms,
  ServerToAgentEventMap,
  ServerToAgentEvents,
} from '@kapitan/shared';
import type { Namespace, Socket } from 'socket.io';
import type { z } from 'zod';
import { isDatabaseUnavailable } from '../common/exception.filter';
import { handshakeError } from '../common/handshake-error';
import type { DomainEvents } from '../common/domain-events';
import { APP_CONFIG, AppConfig } from '../config/config';
import { ExecutionsService } from '../executions/executions.service';
import { MachinesService, type MachineProfile } from '../machines/machines.service';
import { TokenBucket } from './rate-limiter';

interface AgentSocketData {
  machineId: string;
  projectId: string;
  /** From the handshake's read, for the hello's presence update; dropped after it. */
  profile: MachineProfile | null;
  /** Marked online by its hello: only then does its disconnect mark the machine offline. */
  online: boolean;
  bucket: TokenBucket;
  /** Executions known to be this machine's: the ownership check costs one read per execution, not per chunk. */
  owned: Set<string>;
  /** Executions known not to be: a misbehaving agent does not cost a read per message. */
  foreign: Set<string>;
}
type AgentSocket = Socket<AgentToServerEventMap, ServerToAgentEventMap, Record<string, never>, AgentSocketData>;
type AgentNamespace = Namespace<AgentToServerEventMap, ServerToAgentEventMap, Record<string, never>, AgentSocketData>;
type EventName = keyof typeof agentToServerSchemas;

/** Refused events in a row after which the socket is dropped. */
const MAX_STRIKES = 200;
const fail = (code: ErrorAckBody['code'], message: string): { ok: false; error: ErrorAckBody } => ({ ok: false, error: { code, message } });

/**
 * `/agent`: one socket per machine, authenticated by its credential in the
 * handshake and joined to the machine's room. Every payload is parsed with
 * its shared schema before any service sees it; the machine id always comes
 * from the socket, never from a payload (invariant 4).
 */
@WebSocketGateway({ namespace: AGENT_NAMESPACE })
export class AgentGateway implements OnGatewayInit, OnGatewayConnection, OnGatewayDisconnect {
  private readonly logger = new Logger(AgentGateway.name);
  @WebSocketServer() private readonly ns: AgentNamespace;

  constructor(
    private readonly machines: MachinesService,
    private readonly executions: ExecutionsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  afterInit(ns: AgentNamespace): void {
    ns.use((socket, next) => {
      const auth = AgentHandshakeAuthSchema.safeParse(socket.handshake.auth);
      if (!auth.success) return next(handshakeError(ErrorCode.unauthenticated, 'a machine credential is required'));
      this.machines
        .authenticate(auth.data.credential)
        .then((identity) => {
          if (!identity) {
            this.logger.warn({ address: socket.handshake.address }, 'agent handshake refused: unknown or revoked credential');
            return next(handshakeError(ErrorCode.unauthenticated, 'machine credential refused (unknown or revoked)'));
          }
          const rate = this.config.agentEventsPerSecond;
          socket.data = { ...identity, online: false, bucket: new TokenBucket(rate, rate * 10), owned: new Set(), foreign: new Set() };
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
    // The newest socket holds the machine; an older one (a half-dead connection, possibly on another node) is dropped.
    const others = (await this.ns.in(room).fetchSockets()).filter((s) => s.id !== socket.id);
    for (const s of others) s.disconnect(true);
    await socket.join(room);
    // Online once it said hello (one presence write per connection, with its facts).
    this.logger.log({ machineId, socketId: socket.id, replaced: others.length }, 'agent connected');
  }

  async handleDisconnect(socket: AgentSocket): Promise<void> {
    const { machineId, online } = socket.data;
    if (!machineId) return;
    if (online) await this.machines.markOffline(machineId, socket.id).catch((err: unknown) => this.logger.warn({ err: String(err) }, 'presence update failed'));
    this.logger.log({ machineId, socketId: socket.id }, 'agent disconnected');
  }

  @SubscribeMessage(AgentEvents.hello)
  async hello(@ConnectedSocket() socket: AgentSocket, @MessageBody() body: unknown): Promise<AgentHelloAck> {
    const p = this.admit(socket, AgentEvents.hello, body);
    if (!p.ok) return p;
    const { machineId, projectId, profile } = socket.data;
    // Gone while the hello waited: its disconnect already passed, so it must not mark the machine online.
    if (!socket.connected) return fail(ErrorCode.unavailable, 'disconnected');
    socket.data.profile = null;
    socket.data.online = true;
    await this.machines.markOnline({ machineId, projectId }, profile, socket.id, p.value.facts);
    // What the agent claims to hold is checked against the stored rows: a claim never grants ownership.
    const mine = await this.executions.ownedBy(machineId, p.value.activeExecutionIds);
    const refused = p.value.activeExecutionIds.filter((id) => !mine.has(id)).map((executionId) => ({ executionId, code: ErrorCode.notFound }));
    if (refused.length) {
      this.logger.warn({ machineId, refused: refused.slice(0, 20).map((r) => r.executionId), count: refused.length }, 'agent hello named executions that are not its own: refused');
    }
    const plan = await this.executions.planForHello(machineId, [...mine]);
    for (const id of [...mine, ...plan.dispatch.map((d) => d.executionId)]) socket.data.owned.add(id);
    // After the ack, so the agent has its hello answer before its work arrives.
    setImmediate(() => {
      for (const d of plan.dispatch) socket.emit(ServerToAgentEvents.dispatch, d);
      for (const executionId of plan.cancel) socket.emit(ServerToAgentEvents.cancel, { executionId });
    });
    return { ok: true, machineId, serverTime: new Date().toISOString(), ...(refused.length ? { refused } : {}) };
  }

  @SubscribeMessage(AgentEvents.heartbeat)
  heartbeat(@ConnectedSocket() socket: AgentSocket, @MessageBody() body: unknown): Ack {
    const p = this.admit(socket, AgentEvents.heartbeat, body);
    if (!p.ok) return p;
    this.machines.heartbeat(socket.data.machineId);
    return { ok: true };
  }

  @SubscribeMessage(AgentEvents.executionStarted)
  async started(@ConnectedSocket() socket: AgentSocket, @MessageBody() body: unknown): Promise<Ack> {
    const p = this.admit(socket, AgentEvents.executionStarted, body);
    if (!p.ok) return p;
    if (!(await this.owns(socket, p.value.executionId, AgentEvents.executionStarted))) return this.notYours();
    const go = await this.executions.started(socket.data.machineId, p.value);
    if (!go) {
      socket.emit(ServerToAgentEvents.cancel, { executionId: p.value.executionId });
      return fail(ErrorCode.conflict, 'execution was cancelled or has finished; it must not run');
    }
    return { ok: true };
  }

  @SubscribeMessage(AgentEvents.executionOutput)
  async output(@ConnectedSocket() socket: AgentSocket, @MessageBody() body: unknown): Promise<ExecutionOutputAck> {
    const p = this.admit(socket, AgentEvents.executionOutput, body);
    if (!p.ok) return p;
    if (!(await this.owns(socket, p.value.executionId, AgentEvents.executionOutput))) return this.notYours();
    try {
      await this.executions.output(p.value.executionId, p.value.chunks);
      return { ok: true, stored: p.value.chunks.length };
    } catch (err) {
      return this.storageFailed(err);
    }
  }

  @SubscribeMessage(AgentEvents.executionFinished)
  async finished(@ConnectedSocket() socket: AgentSocket, @MessageBody() body: unknown): Promise<Ack> {
    const p = this.admit(socket, AgentEvents.executionFinished, body);
    if (!p.ok) return p;
    if (!(await this.owns(socket, p.value.executionId, AgentEvents.executionFinished))) return this.notYours();
    try {
      await this.executions.finished(socket.data.machineId, p.value);
      // Its last report: the ownership cache of a long-lived connection does not grow with every run.
      socket.data.owned.delete(p.value.executionId);
      return { ok: true };
    } catch (err) {
      return this.storageFailed(err);
    }
  }

  // ---------------------------------------------------------------- domain events → agents

  @OnEvent('execution.dispatch')
  async onDispatch(e: DomainEvents['execution.dispatch']): Promise<void> {
    const payloads = e.payloads ?? (await this.executions.dispatchPayloads(e.executionIds));
    const room = Rooms.machine(e.machineId);
    // This node's socket of the machine knows these executions are its own: no ownership read at its first report.
    for (const id of this.ns.adapter.rooms.get(room) ?? []) {
      const owned = this.ns.sockets.get(id)?.data.owned;
      if (owned) for (const d of payloads) owned.add(d.executionId);
    }
    for (const d of payloads) this.ns.to(room).emit(ServerToAgentEvents.dispatch, d);
  }

  @OnEvent('execution.cancel')
  onCancel(e: DomainEvents['execution.cancel']): void {
    this.ns.to(Rooms.machine(e.machineId)).emit(ServerToAgentEvents.cancel, { executionId: e.executionId });
  }

  @OnEvent('machine.revoked')
  onRevoked(e: DomainEvents['machine.revoked']): void {
    this.ns.in(Rooms.machine(e.machineId)).disconnectSockets(true);
    this.logger.log({ machineId: e.machineId }, 'machine revoked: its sockets are dropped');
  }

  // ---------------------------------------------------------------- checks

  /** Rate limit, then schema. Every refusal is an error ack and a log line; nothing changes. */
  private admit<E extends EventName>(
    socket: AgentSocket,
    event: E,
    body: unknown,
  ): { ok: true; value: z.output<(typeof agentToServerSchemas)[E]> } | { ok: false; error: ErrorAckBody } {
    const { bucket, machineId } = socket.data;
    if (!bucket.take()) {
      if (bucket.strikes === 1 || bucket.strikes % 50 === 0) this.logger.warn({ machineId, event, strikes: bucket.strikes }, 'agent throttled');
      if (bucket.strikes === MAX_STRIKES) {
        this.logger.warn({ machineId }, 'agent kept flooding past its rate limit: disconnected');
        // A moment later, so the acks already due tell the agent why.
        setTimeout(() => socket.disconnect(true), 100).unref();
      }
      return fail(ErrorCode.tooManyRequests, `more than ${this.config.agentEventsPerSecond} events per second`);
    }
    const parsed = parsePayload(agentToServerSchemas[event], body);
    if (!parsed.ok) this.logger.warn({ machineId, event, error: parsed.error.message }, 'invalid agent payload refused');
    return parsed as { ok: true; value: z.output<(typeof agentToServerSchemas)[E]> } | { ok: false; error: ErrorAckBody };
  }

  /** `executionId` comes parsed, hence lower case (IdSchema). */
  private async owns(socket: AgentSocket, id: string, event: string): Promise<boolean> {
    const { owned, foreign, machineId } = socket.data;
    if (owned.has(id)) return true;
    if (!foreign.has(id)) {
      if (await this.executions.belongsTo(id, machineId)) {
        owned.add(id);
        return true;
      }
      if (foreign.size > 1000) foreign.clear();
      foreign.add(id);
    }
    this.logger.warn({ machineId, executionId: id, event }, 'agent reported on an execution that is not its own: refused');
    return false;
  }

  private notYours(): { ok: false; error: ErrorAckBody } {
    return fail(ErrorCode.notFound, 'no such execution on this machine');
  }

  /** The agent keeps what was not stored and sends it again; `service_unavailable` tells it to. */
  private storageFailed(err: unknown): { ok: false; error: ErrorAckBody } {
    this.logger.warn({ err: String(err) }, 'could not store agent report');
    return isDatabaseUnavailable(err)
      ? fail(ErrorCode.unavailable, 'storage unavailable; send again later')
      : fail(ErrorCode.unavailable, 'could not store; send again later');
  }
}
