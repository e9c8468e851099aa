import { Logger, OnModuleInit } from '@nestjs/common';
import { OnGatewayConnection, OnGatewayInit, WebSocketGateway, WebSocketServer } from '@nestjs/websockets';
import { ErrorAckBody, ErrorCode, LIVE_NAMESPACE, liveClientToServerSchemas, LiveHandshakeAuthSchema, parsePayload, Rooms } from '@kapitan/shared';
import { AuthService } from '../auth/auth.service';
import { DomainEventsService } from '../common/events.service';
import { handshakeError } from '../common/handshake-error';
import { ProjectsService } from '../projects/projects.service';
import { LiveChannel, type LiveContext, type LiveNamespace, type LiveSocket } from './live-channel';

const fail = (code: ErrorAckBody['code'], message: string): { ok: false; error: ErrorAckBody } => ({ ok: false, error: { code, message } });

/**
 * `/live`: the dashboard's socket. The JWT travels in the handshake, never
 * in an ambient cookie (a foreign page cannot ride it: threat model T33).
 * Every event goes to the handler its feature registered with `LiveChannel`,
 * after its schema. Membership is checked at every join; a user who may no
 * longer watch a project leaves every room of it at once (T35), a logged-out
 * session or a deleted user is dropped (T2).
 */
@WebSocketGateway({ namespace: LIVE_NAMESPACE })
export class LiveGateway implements OnModuleInit, OnGatewayInit, OnGatewayConnection {
  private readonly logger = new Logger(LiveGateway.name);
  @WebSocketServer() private readonly ns: LiveNamespace;

  constructor(
    private readonly channel: LiveChannel,
    private readonly auth: AuthService,
    private readonly projects: ProjectsService,
    private readonly events: DomainEventsService,
  ) {}

  onModuleInit(): void {
    this.events.on('session.revoked', (e) => this.ns.in(Rooms.session(e.sessionId)).disconnectSockets(true));
    this.events.on('user.deleted', (e) => this.ns.in(Rooms.user(e.userId)).disconnectSockets(true));
    // Every role may watch, so only a removal ends it; the role is read again rather than trusted from the event.
    this.events.on('membership.changed', async (e) => {
      if (!(await this.projects.roleOf(e.userId, e.projectId))) await this.evict(e.projectId, e.userId);
    });
    this.events.on('project.deleted', (e) => this.evict(e.projectId));
  }

  afterInit(ns: LiveNamespace): void {
    this.channel.attach(ns);
    ns.use((socket, next) => {
      const parsed = LiveHandshakeAuthSchema.safeParse(socket.handshake.auth);
      const refuse = () => next(handshakeError(ErrorCode.unauthenticated, 'log in again'));
      if (!parsed.success) return refuse();
      this.auth
        .verifyAccessToken(parsed.data.token)
        .then((user) => {
          if (!user) return refuse();
          socket.data = { user, watch: {} };
          socket.onAny((event: string, ...args: unknown[]) => this.dispatch(socket, event, args));
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

  private dispatch(socket: LiveSocket, event: string, args: unknown[]): void {
    const ack = args[args.length - 1];
    if (typeof ack !== 'function') return; // every dashboard event takes an ack; one without is ignored
    const handler = this.channel.handlerFor(event);
    const reply = ack as (a: unknown) => void;
    if (!handler) return reply(fail(ErrorCode.notFound, 'unknown event'));
    const p = parsePayload(liveClientToServerSchemas[event as keyof typeof liveClientToServerSchemas], args.length > 1 ? args[0] : undefined);
    if (!p.ok) return reply(p);
    handler(this.context(socket), p.value as never).then(reply, (err: unknown) => {
      this.logger.error({ err: String(err), event, userId: socket.data.user.userId }, 'live event handler failed');
      reply(fail(ErrorCode.internal, 'internal error'));
    });
  }

  private context(socket: LiveSocket): LiveContext {
    const { userId } = socket.data.user;
    return {
      userId,
      join: async (room, projectId) => {
        await socket.join(room);
        socket.data.watch[room] = projectId;
        // The caller checked the membership before the join; a removal committed meanwhile found this socket
        // not yet in the room, so it is checked once more now that it is.
        if (await this.projects.roleOf(userId, projectId)) return true;
        delete socket.data.watch[room];
        await socket.leave(room);
        return false;
      },
      leave: async (room) => {
        delete socket.data.watch[room];
        await socket.leave(room);
      },
    };
  }

  /**
   * Every socket of the user (or, with no user, every socket) leaves every
   * room of the project, on whichever node it is: the project room and each
   * execution room it joined.
   */
  private async evict(projectId: string, userId?: string): Promise<void> {
    const sockets = await (userId ? this.ns.in(Rooms.user(userId)) : this.ns).fetchSockets();
    let left = 0;
    for (const s of sockets) {
      const rooms = Object.entries(s.data.watch ?? {})
        .filter(([, p]) => p === projectId)
        .map(([room]) => room);
      rooms.push(Rooms.project(projectId));
      for (const room of rooms) s.leave(room);
      const local = this.ns.sockets.get(s.id);
      if (local) for (const room of rooms) delete local.data.watch[room];
      left += rooms.length - 1;
    }
    if (sockets.length) this.logger.log({ projectId, userId, sockets: sockets.length, executionRooms: left }, 'live sockets left the rooms of a project they may no longer watch');
  }
}
