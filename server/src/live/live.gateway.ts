import { Inject, Logger } from '@nestjs/common';
import { OnEvent } from '@nestjs/event-emitter';
import { ConnectedSocket, MessageBody, OnGatewayConnection, OnGatewayInit, SubscribeMessage, WebSocketGateway, WebSocketServer } from '@nestjs/websockets';
import {
  Ack,
  ErrorAckBody,
  ErrorCode,
  ExecutionChunksAck,
  LIMITS,
  LIVE_NAMESPACE,
  LiveClientEvents,
  liveClientToServerSchemas,
  LiveClientToServerEventMap,
  LiveHandshakeAuthSchema,
  LiveServerEvents,
  LiveServerToClientEventMap,
  parsePayload,
  Rooms,
} from '@kapitan/shared';
import type { Namespace, Socket } from 'socket.io';
import { AuthUser } from '../auth/auth-user';
import { AuthService } from '../auth/auth.service';
import { ApiException } from '../common/api-exception';
import { handshakeError } from '../common/handshake-error';
import { APP_CONFIG, AppConfig } from '../config/config';
import type { DomainEvents } from '../common/domain-events';
import { ExecutionsService, toSummary } from '../executions/executions.service';
import { ProjectsService } from '../projects/projects.service';

interface LiveSocketData {
  user: AuthUser;
}
type LiveSocket = Socket<LiveClientToServerEventMap, LiveServerToClientEventMap, Record<string, never>, LiveSocketData>;
type LiveNamespace = Namespace<LiveClientToServerEventMap, LiveServerToClientEventMap, Record<string, never>, LiveSocketData>;

const fail = (code: ErrorAckBody['code'], message: string): { ok: false; error: ErrorAckBody } => ({ ok: false, error: { code, message } });

/**
 * `/live`: the dashboard's socket. The JWT travels in the handshake, never
 * in an ambient cookie (a foreign page cannot ride it, ADVERSARIAL 33).
 * Membership is checked at every subscribe; logging out drops the socket.
 */
@WebSocketGateway({ namespace: LIVE_NAMESPACE })
export class LiveGateway implements OnGatewayInit, OnGatewayConnection {
  private readonly logger = new Logger(LiveGateway.name);
  @WebSocketServer() private readonly ns: LiveNamespace;

  constructor(
    private readonly auth: AuthService,
    private readonly projects: ProjectsService,
    private readonly executions: ExecutionsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  afterInit(ns: LiveNamespace): void {
    ns.use((socket, next) => {
      const parsed = LiveHandshakeAuthSchema.safeParse(socket.handshake.auth);
      const refuse = () => next(handshakeError(ErrorCode.unauthenticated, 'log in again'));
      if (!parsed.success) return refuse();
      this.auth
        .verifyAccessToken(parsed.data.token)
        .then((user) => {
          if (!user) return refuse();
          socket.data = { user };
          next();
        })
        .catch(() => refuse());
    });
  }

  async handleConnection(socket: LiveSocket): Promise<void> {
    const { user } = socket.data;
    if (!user) return;
    await socket.join([Rooms.session(user.sessionId), Rooms.user(user.userId)]);
  }

  @SubscribeMessage(LiveClientEvents.subscribeProject)
  async subscribeProject(@ConnectedSocket() socket: LiveSocket, @MessageBody() body: unknown): Promise<Ack> {
    const p = parsePayload(liveClientToServerSchemas['subscribe:project'], body);
    if (!p.ok) return p;
    const role = await this.projects.roleOf(socket.data.user.userId, p.value.projectId);
    if (!role) {
      this.logger.warn({ userId: socket.data.user.userId, projectId: p.value.projectId }, 'live subscription refused: not a member');
      return fail(ErrorCode.notFound, 'project not found');
    }
    await socket.join(Rooms.project(p.value.projectId));
    return { ok: true };
  }

  @SubscribeMessage(LiveClientEvents.unsubscribeProject)
  async unsubscribeProject(@ConnectedSocket() socket: LiveSocket, @MessageBody() body: unknown): Promise<Ack> {
    const p = parsePayload(liveClientToServerSchemas['unsubscribe:project'], body);
    if (!p.ok) return p;
    await socket.leave(Rooms.project(p.value.projectId));
    return { ok: true };
  }

  /** Join first, then read history: a chunk stored meanwhile arrives both ways and the client drops the repeat by seq. */
  @SubscribeMessage(LiveClientEvents.subscribeExecution)
  async subscribeExecution(@ConnectedSocket() socket: LiveSocket, @MessageBody() body: unknown): Promise<ExecutionChunksAck> {
    const p = parsePayload(liveClientToServerSchemas['subscribe:execution'], body);
    if (!p.ok) return p;
    return this.history(socket, p.value.executionId, p.value.fromSeq, LIMITS.logPageMax, true);
  }

  @SubscribeMessage(LiveClientEvents.unsubscribeExecution)
  async unsubscribeExecution(@ConnectedSocket() socket: LiveSocket, @MessageBody() body: unknown): Promise<Ack> {
    const p = parsePayload(liveClientToServerSchemas['unsubscribe:execution'], body);
    if (!p.ok) return p;
    await socket.leave(Rooms.execution(p.value.executionId));
    return { ok: true };
  }

  @SubscribeMessage(LiveClientEvents.executionHistory)
  async executionHistory(@ConnectedSocket() socket: LiveSocket, @MessageBody() body: unknown): Promise<ExecutionChunksAck> {
    const p = parsePayload(liveClientToServerSchemas['execution:history'], body);
    if (!p.ok) return p;
    return this.history(socket, p.value.executionId, p.value.fromSeq, p.value.limit ?? LIMITS.logPageMax, false);
  }

  private async history(socket: LiveSocket, id: string, fromSeq: number, limit: number, join: boolean): Promise<ExecutionChunksAck> {
    let e;
    try {
      e = await this.executions.findVisible(socket.data.user.userId, id, 'viewer');
    } catch (err) {
      if (err instanceof ApiException) {
        this.logger.warn({ userId: socket.data.user.userId, executionId: id }, 'live execution subscription refused');
        return fail(ErrorCode.notFound, 'execution not found');
      }
      throw err;
    }
    if (join) await socket.join(Rooms.execution(id));
    const page = join ? await this.executions.historyForJoin(e, fromSeq, limit) : await this.executions.logPage(e, fromSeq, limit);
    return { ok: true, execution: toSummary(e), chunks: page.chunks, nextSeq: page.nextSeq };
  }

  // ---------------------------------------------------------------- domain events → dashboards

  /**
   * Might anyone listen in one of these rooms? socket.io encodes a broadcast
   * before it looks for receivers, so an unwatched run's output would be
   * serialised for nobody. One node (no Redis) knows all its rooms; with
   * Redis another node may hold the listeners, so it always sends.
   */
  private audience(...rooms: string[]): boolean {
    if (this.config.redisUrl) return true;
    const local = this.ns.adapter.rooms;
    return rooms.some((r) => (local.get(r)?.size ?? 0) > 0);
  }

  @OnEvent('execution.output')
  onOutput(e: DomainEvents['execution.output']): void {
    const room = Rooms.execution(e.executionId);
    if (this.audience(room)) this.ns.to(room).emit(LiveServerEvents.output, e);
  }

  @OnEvent('execution.updated')
  onExecution(e: DomainEvents['execution.updated']): void {
    const rooms = [Rooms.project(e.projectId), Rooms.execution(e.execution.id)];
    if (this.audience(...rooms)) this.ns.to(rooms).emit(LiveServerEvents.execution, e);
  }

  @OnEvent('machine.updated')
  onMachine(e: DomainEvents['machine.updated']): void {
    const room = Rooms.project(e.projectId);
    if (this.audience(room)) this.ns.to(room).emit(LiveServerEvents.machine, e);
  }

  @OnEvent('session.revoked')
  onSessionRevoked(e: DomainEvents['session.revoked']): void {
    this.ns.in(Rooms.session(e.sessionId)).disconnectSockets(true);
  }

  @OnEvent('user.deleted')
  onUserDeleted(e: DomainEvents['user.deleted']): void {
    this.ns.in(Rooms.user(e.userId)).disconnectSockets(true);
  }

  @OnEvent('membership.changed')
  async onMembershipChanged(e: DomainEvents['membership.changed']): Promise<void> {
    // A removed member stops hearing the project at once; a changed role keeps its view.
    if (!(await this.projects.roleOf(e.userId, e.projectId))) this.ns.in(Rooms.user(e.userId)).socketsLeave(Rooms.project(e.projectId));
  }
}
