import { Injectable, effect, inject, signal, untracked } from '@angular/core';
import {
  LIVE_NAMESPACE,
  LiveClientEvents,
  LiveDeliveryEventSchema,
  LiveExecutionEventSchema,
  LiveMachineEventSchema,
  LiveOutputEventSchema,
  LiveServerEvents,
  ServerDrainingSchema,
  type DeliveryKind,
  type DeliveryMachine,
  LiveContainerLogsEventSchema,
  LiveContainerOperationEventSchema,
  LiveContainersEventSchema,
  LiveDockerStatusEventSchema,
  LiveHostMetricsEventSchema,
  LiveMetricsSampleEventSchema,
  type LiveHostMetricsEvent,
  type LiveMetricsSampleEvent,
  type ContainerOperation,
  type ExecutionSummary,
  type LiveContainersEvent,
  type MachineDockerStatus,
  type OutputChunk,
  type LiveClientToServerEventMap,
  type LiveServerToClientEventMap,
  type Machine,
} from '@kapitan/shared';
import { Observable, type Subscriber } from 'rxjs';
import { io, type Socket } from 'socket.io-client';
import { AuthApi } from '../auth/auth-api';
import { AuthService } from '../auth/auth.service';
import { ExecutionStream, type ExecutionFeedEvent } from './execution-stream';

type LiveSocket = Socket<LiveServerToClientEventMap, LiveClientToServerEventMap>;

export type LiveState = 'offline' | 'connecting' | 'online';

export type ProjectLiveEvent =
  | { type: 'machine'; machine: Machine }
  | { type: 'execution'; execution: ExecutionSummary }
  /** One machine's part of a deploy or distribution. */
  | { type: 'delivery'; kind: DeliveryKind; machine: DeliveryMachine }
  | { type: 'containers'; event: LiveContainersEvent }
  | { type: 'docker'; status: MachineDockerStatus }
  | { type: 'container-operation'; operation: ContainerOperation }
  /** A machine's stored host sample (at most one per raw interval): the machine list's sparklines. */
  | { type: 'host-metrics'; event: LiveHostMetricsEvent }
  /** The room was joined again after a reconnect: events may have been missed, reload lists. */
  | { type: 'resync' }
  | { type: 'error'; message: string };

interface ProjectRoom {
  readonly projectId: string;
  readonly listeners: Set<Subscriber<ProjectLiveEvent>>;
  joinedBefore: boolean;
}

const ACK_TIMEOUT_MS = 15_000;

/** What a container log follow shows: its lines as output, and notes (lines dropped, the follow ended). */
export type ContainerLogFeedEvent = { type: 'output'; chunks: OutputChunk[] } | { type: 'note'; text: string };

interface LogFollow {
  machineId: string;
  containerId: string;
  tail: number;
  streamId: string | null;
  seq: number;
  emit(e: ContainerLogFeedEvent): void;
}

/**
 * The dashboard's one `/live` socket. It authenticates with the JWT in the
 * handshake (never an ambient cookie, threat model T33), reconnects by itself with
 * back-off and jitter, and re-joins every room after a reconnect. Components get
 * rooms as Observables and never see the socket.
 */
@Injectable({ providedIn: 'root' })
export class LiveService {
  private readonly auth = inject(AuthService);
  private readonly authApi = inject(AuthApi);

  private socket: LiveSocket | null = null;
  private socketToken: string | null = null;
  private refusedRetry: ReturnType<typeof setTimeout> | null = null;
  private refusals = 0;
  /** The server said its node is stopping: its disconnect is expected, and we redial at once. */
  private moving = false;

  private readonly projectRooms = new Map<string, ProjectRoom>();
  private readonly executionStreams = new Map<string, Set<ExecutionStream>>();
  private readonly logFollows = new Set<LogFollow>();
  /** Machines whose metrics someone watches, with the watchers. */
  private readonly metricsWatchers = new Map<string, Set<Subscriber<LiveMetricsSampleEvent>>>();

  private readonly _state = signal<LiveState>('offline');
  private readonly _lastError = signal<string | null>(null);
  /** `online` once the handshake is accepted; `connecting` while socket.io retries. */
  readonly state = this._state.asReadonly();
  readonly lastError = this._lastError.asReadonly();

  constructor() {
    effect(() => {
      const token = this.auth.token();
      untracked(() => (token ? this.open(token) : this.close()));
    });
  }

  /**
   * Machine, execution and delivery updates of one project (`subscribe:project`), joined while
   * anyone listens and re-joined after every reconnect.
   */
  project(projectId: string): Observable<ProjectLiveEvent> {
    return new Observable<ProjectLiveEvent>((subscriber) => {
      let room = this.projectRooms.get(projectId);
      if (!room) {
        room = { projectId, listeners: new Set(), joinedBefore: false };
        this.projectRooms.set(projectId, room);
        if (this.socket?.connected) this.joinProject(room);
      }
      room.listeners.add(subscriber);
      const joined = room;
      return () => {
        joined.listeners.delete(subscriber);
        if (joined.listeners.size > 0 || this.projectRooms.get(projectId) !== joined) return;
        this.projectRooms.delete(projectId);
        if (this.socket?.connected) {
          this.socket.emitWithAck(LiveClientEvents.unsubscribeProject, { projectId }).catch(() => undefined);
        }
      };
    });
  }

  /**
   * One execution's state and output (`subscribe:execution`): history first, then
   * the live tail, merged by sequence number; each subscriber gets the whole output
   * once, in order, from sequence 0.
   */
  execution(executionId: string): Observable<ExecutionFeedEvent> {
    return new Observable<ExecutionFeedEvent>((subscriber) => {
      const stream = new ExecutionStream(
        {
          subscribe: (fromSeq) =>
            this.request((s) => s.emitWithAck(LiveClientEvents.subscribeExecution, { executionId, fromSeq })),
          history: (fromSeq) =>
            this.request((s) => s.emitWithAck(LiveClientEvents.executionHistory, { executionId, fromSeq })),
        },
        (e) => subscriber.next(e),
      );
      let set = this.executionStreams.get(executionId);
      if (!set) {
        set = new Set();
        this.executionStreams.set(executionId, set);
      }
      set.add(stream);
      if (this.socket?.connected) stream.connect();
      const streams = set;
      return () => {
        stream.dispose();
        streams.delete(stream);
        if (streams.size > 0 || this.executionStreams.get(executionId) !== streams) return;
        this.executionStreams.delete(executionId);
        if (this.socket?.connected) {
          this.socket.emitWithAck(LiveClientEvents.unsubscribeExecution, { executionId }).catch(() => undefined);
        }
      };
    });
  }

  /**
   * A container's log, from `tail` lines back, then live, while subscribed.
   * Lossy by design (the engine keeps the log): after a reconnect it goes on
   * from now, with a note that lines may be missing.
   */
  containerLogs(machineId: string, containerId: string, tail: number): Observable<ContainerLogFeedEvent> {
    return new Observable<ContainerLogFeedEvent>((subscriber) => {
      const f: LogFollow = { machineId, containerId, tail, streamId: null, seq: 0, emit: (e) => subscriber.next(e) };
      this.logFollows.add(f);
      if (this.socket?.connected) this.followLogs(f);
      return () => {
        this.logFollows.delete(f);
        const streamId = f.streamId;
        if (streamId && this.socket?.connected) {
          this.socket.emitWithAck(LiveClientEvents.unsubscribeContainerLogs, { streamId }).catch(() => undefined);
        }
      };
    });
  }

  /**
   * A machine's metrics samples as they arrive (`subscribe:machine-metrics`),
   * while subscribed: watching also makes its agent sample fast. Re-joined
   * after every reconnect; a gap is not filled in (the charts load history
   * over REST).
   */
  machineMetrics(machineId: string): Observable<LiveMetricsSampleEvent> {
    return new Observable<LiveMetricsSampleEvent>((subscriber) => {
      let set = this.metricsWatchers.get(machineId);
      if (!set) {
        set = new Set();
        this.metricsWatchers.set(machineId, set);
        if (this.socket?.connected) this.watchMetrics(machineId);
      }
      set.add(subscriber);
      const watchers = set;
      return () => {
        watchers.delete(subscriber);
        if (watchers.size > 0 || this.metricsWatchers.get(machineId) !== watchers) return;
        this.metricsWatchers.delete(machineId);
        if (this.socket?.connected) {
          this.socket.emitWithAck(LiveClientEvents.unsubscribeMachineMetrics, { machineId }).catch(() => undefined);
        }
      };
    });
  }

  private watchMetrics(machineId: string): void {
    this.socket?.emitWithAck(LiveClientEvents.subscribeMachineMetrics, { machineId }).then(
      (ack) => {
        if (!ack.ok) for (const s of this.metricsWatchers.get(machineId) ?? []) s.error(new Error(ack.error.message));
      },
      () => undefined, // disconnected or timed out: the next connect watches again
    );
  }

  private followLogs(f: LogFollow): void {
    const socket = this.socket;
    if (!socket) return;
    const tail = f.streamId === null ? f.tail : 0;
    if (f.streamId !== null) f.emit({ type: 'note', text: 'reconnected: lines written meanwhile may be missing' });
    f.streamId = null;
    socket.emitWithAck(LiveClientEvents.subscribeContainerLogs, { machineId: f.machineId, containerId: f.containerId, tail }).then(
      (ack) => {
        if (!this.logFollows.has(f)) {
          if (ack.ok) socket.emitWithAck(LiveClientEvents.unsubscribeContainerLogs, { streamId: ack.streamId }).catch(() => undefined);
          return;
        }
        if (!ack.ok) return f.emit({ type: 'note', text: ack.error.message });
        f.streamId = ack.streamId;
      },
      () => undefined,
    );
  }

  // ------------------------------------------------------------------ socket lifecycle

  private open(token: string): void {
    if (this.socket && this.socketToken === token) return;
    this.close();
    this.socketToken = token;
    const socket: LiveSocket = io(`${location.origin}${LIVE_NAMESPACE}`, {
      // A function, so every reconnect presents the current token.
      auth: (cb) => cb({ token: this.auth.token() ?? '' }),
      forceNew: true,
      withCredentials: false,
      ackTimeout: ACK_TIMEOUT_MS,
      reconnectionDelay: 1000,
      reconnectionDelayMax: 30_000,
      randomizationFactor: 0.5,
      transports: ['websocket', 'polling'],
      tryAllTransports: true,
    });
    this.socket = socket;
    this._state.set('connecting');

    socket.on('connect', () => {
      this.refusals = 0;
      this._state.set('online');
      this._lastError.set(null);
      for (const room of this.projectRooms.values()) this.joinProject(room);
      for (const set of this.executionStreams.values()) for (const s of set) s.connect();
      for (const f of this.logFollows) this.followLogs(f);
      for (const machineId of this.metricsWatchers.keys()) this.watchMetrics(machineId);
    });

    socket.on('disconnect', (reason) => {
      // A stopping node drops us on purpose (`server:draining` first): at once, not after socket.io's delay, and
      // through the same origin, where the balancer takes us to another node. The rooms and streams resume on connect.
      const redial = this.moving && reason === 'io server disconnect';
      this.moving = false;
      this._state.set(socket.active || redial ? 'connecting' : 'offline');
      for (const set of this.executionStreams.values()) for (const s of set) s.disconnect();
      if (redial && this.socket === socket) socket.connect();
    });

    socket.on(LiveServerEvents.draining, (payload) => {
      const p = ServerDrainingSchema.safeParse(payload);
      if (!p.success) return warnInvalid(LiveServerEvents.draining, p.error);
      this.moving = true;
    });

    socket.on('connect_error', (err) => {
      this._lastError.set(err.message);
      if (socket.active) {
        this._state.set('connecting'); // a transport failure: socket.io retries by itself
        return;
      }
      // The server refused the handshake. If the token is no longer valid, the
      // 401 of /api/me ends the session (interceptor); otherwise try again later.
      this._state.set('offline');
      this.authApi.me().subscribe({
        next: () => this.retryRefused(socket),
        error: () => this.retryRefused(socket),
      });
    });

    socket.on(LiveServerEvents.machine, (payload) => {
      const p = LiveMachineEventSchema.safeParse(payload);
      if (!p.success) return warnInvalid(LiveServerEvents.machine, p.error);
      this.toProject(p.data.projectId, { type: 'machine', machine: p.data.machine });
    });

    socket.on(LiveServerEvents.execution, (payload) => {
      const p = LiveExecutionEventSchema.safeParse(payload);
      if (!p.success) return warnInvalid(LiveServerEvents.execution, p.error);
      this.toProject(p.data.projectId, { type: 'execution', execution: p.data.execution });
      for (const s of this.executionStreams.get(p.data.execution.id) ?? []) s.onExecution(p.data.execution);
    });

    socket.on(LiveServerEvents.delivery, (payload) => {
      const p = LiveDeliveryEventSchema.safeParse(payload);
      if (!p.success) return warnInvalid(LiveServerEvents.delivery, p.error);
      this.toProject(p.data.projectId, { type: 'delivery', kind: p.data.kind, machine: p.data.machine });
    });

    socket.on(LiveServerEvents.output, (payload) => {
      const p = LiveOutputEventSchema.safeParse(payload);
      if (!p.success) return warnInvalid(LiveServerEvents.output, p.error);
      for (const s of this.executionStreams.get(p.data.executionId) ?? []) s.onLive(p.data.chunks);
    });

    socket.on(LiveServerEvents.containers, (payload) => {
      const p = LiveContainersEventSchema.safeParse(payload);
      if (!p.success) return warnInvalid(LiveServerEvents.containers, p.error);
      this.toProject(p.data.projectId, { type: 'containers', event: p.data });
    });

    socket.on(LiveServerEvents.dockerStatus, (payload) => {
      const p = LiveDockerStatusEventSchema.safeParse(payload);
      if (!p.success) return warnInvalid(LiveServerEvents.dockerStatus, p.error);
      this.toProject(p.data.projectId, { type: 'docker', status: p.data.status });
    });

    socket.on(LiveServerEvents.containerOperation, (payload) => {
      const p = LiveContainerOperationEventSchema.safeParse(payload);
      if (!p.success) return warnInvalid(LiveServerEvents.containerOperation, p.error);
      this.toProject(p.data.projectId, { type: 'container-operation', operation: p.data.operation });
    });

    socket.on(LiveServerEvents.metricsSample, (payload) => {
      const p = LiveMetricsSampleEventSchema.safeParse(payload);
      if (!p.success) return warnInvalid(LiveServerEvents.metricsSample, p.error);
      for (const s of [...(this.metricsWatchers.get(p.data.machineId) ?? [])]) s.next(p.data);
    });

    socket.on(LiveServerEvents.hostMetrics, (payload) => {
      const p = LiveHostMetricsEventSchema.safeParse(payload);
      if (!p.success) return warnInvalid(LiveServerEvents.hostMetrics, p.error);
      this.toProject(p.data.projectId, { type: 'host-metrics', event: p.data });
    });

    socket.on(LiveServerEvents.containerLogs, (payload) => {
      const p = LiveContainerLogsEventSchema.safeParse(payload);
      if (!p.success) return warnInvalid(LiveServerEvents.containerLogs, p.error);
      for (const f of this.logFollows) {
        if (f.streamId !== p.data.streamId) continue;
        if (p.data.dropped) f.emit({ type: 'note', text: `${p.data.dropped} lines dropped: the server was not keeping up` });
        if (p.data.lines.length) f.emit({ type: 'output', chunks: p.data.lines.map((l) => ({ seq: f.seq++, stream: l.stream, data: l.data + '\n' })) });
        if (p.data.ended) f.emit({ type: 'note', text: `log ended: ${p.data.reason ?? 'the container stopped'}` });
      }
    });
  }

  private close(): void {
    if (this.refusedRetry) clearTimeout(this.refusedRetry);
    this.refusedRetry = null;
    this.socket?.removeAllListeners();
    this.socket?.disconnect();
    this.socket = null;
    this.socketToken = null;
    this._state.set('offline');
    for (const set of this.executionStreams.values()) for (const s of set) s.disconnect();
  }

  /** Back-off with jitter after a refused handshake (socket.io does not retry those itself). */
  private retryRefused(socket: LiveSocket): void {
    if (this.socket !== socket || !this.auth.token() || this.refusedRetry) return;
    const base = Math.min(60_000, 1000 * 2 ** this.refusals++);
    const delay = base + Math.random() * base;
    this.refusedRetry = setTimeout(() => {
      this.refusedRetry = null;
      if (this.socket === socket && !socket.connected) {
        this._state.set('connecting');
        socket.connect();
      }
    }, delay);
  }

  private joinProject(room: ProjectRoom): void {
    const socket = this.socket;
    if (!socket) return;
    socket.emitWithAck(LiveClientEvents.subscribeProject, { projectId: room.projectId }).then(
      (ack) => {
        if (!ack.ok) {
          this.toRoom(room, { type: 'error', message: ack.error.message });
          return;
        }
        if (room.joinedBefore) this.toRoom(room, { type: 'resync' });
        room.joinedBefore = true;
      },
      () => undefined, // disconnected or timed out: the next connect joins again
    );
  }

  private request<T>(send: (s: LiveSocket) => Promise<T>): Promise<T> {
    const s = this.socket;
    if (!s?.connected) return Promise.reject(new Error('not connected'));
    return send(s);
  }

  private toProject(projectId: string, e: ProjectLiveEvent): void {
    const room = this.projectRooms.get(projectId);
    if (room) this.toRoom(room, e);
  }

  private toRoom(room: ProjectRoom, e: ProjectLiveEvent): void {
    for (const l of [...room.listeners]) l.next(e);
  }
}

function warnInvalid(event: string, error: unknown): void {
  console.warn(`[live] ignored an invalid "${event}" payload`, error);
}
