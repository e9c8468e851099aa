import { Inject, Logger, OnModuleInit } from '@nestjs/common';
import { OnGatewayConnection, OnGatewayDisconnect, OnGatewayInit, WebSocketGateway, WebSocketServer } from '@nestjs/websockets';
import { ErrorAckBody, ErrorCode, LIVE_NAMESPACE, liveClientToServerSchemas, LiveHandshakeAuthSchema, LiveServerEvents, parsePayload, Rooms } from '@kapitan/shared';
import { AuthService } from '../auth/auth.service';
import { DomainEventsService } from '../common/events.service';
import { handshakeError } from '../common/handshake-error';
import { APP_CONFIG, AppConfig } from '../config/config';
import { DrainService } from '../drain/drain.service';
import { ProjectsService } from '../projects/projects.service';
import { LiveChannel, type LiveContext, type LiveNamespace, type LiveSocket } from './live-channel';
import { HISTORY_WAITING_PER_RUNNING, LIVE_MAX_STRIKES, LiveThrottle, type LiveRefusal, type LiveSocketThrottle } from './live-throttle';

const fail = (code: ErrorAckBody['code'], message: string): { ok: false; error: ErrorAckBody } => ({ ok: false, error: { code, message } });

/**
 * `/live`: the dashboard's socket. The JWT travels in the handshake, never
 * in an ambient cookie (a foreign page cannot ride it: threat model T33).
 * Every event goes to the handler its feature registered with `LiveChannel`,
 * after its schema. Membership is checked at every join; a user who may no
 * longer watch a project leaves every room of it at once (T35), a logged-out
 * session or a deleted user is dropped (T2). Every event first passes the
 * socket's and its user's rate limit and, for a history read, the bound on
 * reads in flight; a socket that keeps pushing past them is dropped (T44).
 */
@WebSocketGateway({ namespace: LIVE_NAMESPACE })
export class LiveGateway implements OnModuleInit, OnGatewayInit, OnGatewayConnection, OnGatewayDisconnect {
  private readonly logger = new Logger(LiveGateway.name);
  @WebSocketServer() private readonly ns: LiveNamespace;
  private readonly throttle: LiveThrottle;
  /**
   * Each socket's share of the rate limits. Not in `socket.data`: that is
   * serialised for other nodes (fetchSockets over Redis), and a throttle is
   * closures, which do not serialise (and mean nothing on another node).
   */
  private readonly throttles = new WeakMap<LiveSocket, LiveSocketThrottle>();

  constructor(
    private readonly channel: LiveChannel,
    private readonly auth: AuthService,
    private readonly projects: ProjectsService,
    private readonly events: DomainEventsService,
    private readonly drain: DrainService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.throttle = new LiveThrottle(config.live.eventsPerSecond, config.live.historyInFlight);
  }

  onModuleInit(): void {
    // The node is stopping: each dashboard is told to reconnect at once (the balancer takes it elsewhere), where it
    // joins its rooms again and reads what it missed by sequence number (web LiveService, ExecutionStream).
    this.drain.onDrain('dashboards', async () => {
      const sockets = [...this.ns.sockets.values()];
      for (const s of sockets) s.emit(LiveServerEvents.draining, { reason: 'this server node is stopping: reconnect' });
      for (const s of sockets) s.disconnect(true);
      this.logger.log({ dashboards: sockets.length }, 'drain: dashboards told to move');
    });
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
      if (this.drain.draining) return next(handshakeError(ErrorCode.unavailable, 'this server node is stopping; try again'));
      const parsed = LiveHandshakeAuthSchema.safeParse(socket.handshake.auth);
      const refuse = () => next(handshakeError(ErrorCode.unauthenticated, 'log in again'));
      if (!parsed.success) return refuse();
      this.auth
        .verifyAccessToken(parsed.data.token)
        .then((user) => {
          if (!user) return refuse();
          socket.data = { user, watch: {} };
          this.throttles.set(socket, this.throttle.open(user.userId));
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

  handleDisconnect(socket: LiveSocket): void {
    this.throttles.get(socket)?.close();
  }

  private dispatch(socket: LiveSocket, event: string, args: unknown[]): void {
    const ack = args[args.length - 1];
    const reply = typeof ack === 'function' ? (ack as (a: unknown) => void) : () => undefined;
    // Counted before anything else, events without an ack too: a flood costs no read and no parse.
    const throttle = this.throttles.get(socket)!;
    const heavy = this.channel.isHeavy(event);
    const refusal = throttle.admit(heavy);
    if (refusal) return reply(this.throttled(socket, throttle, event, refusal));
    const done = heavy ? () => throttle.done() : () => undefined;
    if (typeof ack !== 'function') return done(); // every dashboard event takes an ack; one without is ignored
    const handler = this.channel.handlerFor(event);
    if (!handler) return reply(fail(ErrorCode.notFound, 'unknown event'));
    const p = parsePayload(liveClientToServerSchemas[event as keyof typeof liveClientToServerSchemas], args.length > 1 ? args[0] : undefined);
    if (!p.ok) {
      done();
      return reply(p);
    }
    (heavy ? throttle.turn() : Promise.resolve())
      .then(() => handler(this.context(socket), p.value as never))
      .then(reply, (err: unknown) => {
        this.logger.error({ err: String(err), event, userId: socket.data.user.userId }, 'live event handler failed');
        reply(fail(ErrorCode.internal, 'internal error'));
      })
      .finally(done);
  }

  private throttled(socket: LiveSocket, throttle: LiveSocketThrottle, event: string, why: LiveRefusal): { ok: false; error: ErrorAckBody } {
    const { user } = socket.data;
    if (throttle.strikes === 1 || throttle.strikes % 50 === 0) {
      this.logger.warn({ userId: user.userId, event: event.slice(0, 64), why, strikes: throttle.strikes }, 'live socket throttled');
    }
    if (throttle.strikes === LIVE_MAX_STRIKES) {
      this.logger.warn({ userId: user.userId, socketId: socket.id }, 'live socket kept flooding past its rate limit: disconnected');
      // A moment later, so the acks already due tell the dashboard why.
      setTimeout(() => socket.disconnect(true), 100).unref();
    }
    const { eventsPerSecond, historyInFlight } = this.config.live;
    return fail(
      ErrorCode.tooManyRequests,
      why === 'history_in_flight'
        ? `at most ${historyInFlight} history reads at once per connection, and ${historyInFlight * HISTORY_WAITING_PER_RUNNING} waiting; wait for an answer`
        : why === 'user_rate'
          ? `more than ${eventsPerSecond * 2} events per second from this user's connections`
          : `more than ${eventsPerSecond} events per second`,
    );
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
      inRoom: (room) => socket.rooms.has(room),
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
