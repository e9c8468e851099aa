/**
 * The agent's connection to its Docker engine, for supervision: the state of
 * every container, kept in step with the server.
 *
 * - While the server link is ready, the server holds what the engine holds:
 *   at every (re)connect to the server or to the engine, a full snapshot
 *   (`containers:snapshot`, in parts) replaces what the server had; between
 *   snapshots, Docker's event stream drives patches (`containers:changed`).
 *   Events of one container that arrive close together are coalesced
 *   (`debounceMs`) and the container is read again once, so a burst costs
 *   one inspect and one message, and what is sent is always the container as
 *   it is now, never a replayed intermediate state.
 * - Every read and send goes through one queue: a patch read after a
 *   snapshot leaves after it. A send that fails (not acknowledged, refused)
 *   is healed by a new snapshot, not by replaying patches.
 * - The engine can go away (restart, socket removed, permission lost): the
 *   event stream ends, the server is told `docker:status` unavailable with
 *   the reason, and the agent dials the engine again with backoff and jitter;
 *   once back, status available and a new snapshot.
 * - With no socket file nothing is loaded (dockerode is required only once
 *   there is an engine to talk to); the agent keeps looking for one.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  AgentEvents,
  CONTAINER_LIMITS,
  type AgentToServerEventMap,
  type Container,
  type DockerStatus,
} from '@kapitan/shared';
import type Dockerode from 'dockerode';
import { Backoff } from '../backoff';
import { silentLogger, type Logger } from '../logger';
import { describeTarget, dockerClient, dockerError, targetMissing, type DockerTarget } from './docker-target';
import { readContainers } from './read';

/** What the supervisor needs of the server connection. */
export interface ServerLink {
  readonly ready: boolean;
  /** Emit an agent event and wait for its ack; rejects when not connected or not acknowledged in time. */
  request<E extends keyof AgentToServerEventMap>(event: E, payload: Parameters<AgentToServerEventMap[E]>[0], timeoutMs?: number): Promise<unknown>;
}

export interface SupervisorOptions {
  target: DockerTarget;
  link: ServerLink;
  logger?: Logger;
  /** Coalescing window of a container's events. Default 150 ms. */
  debounceMs?: number;
  /** Cap of the engine reconnect delay. Default 30 s. */
  maxBackoffMs?: number;
  rng?: () => number;
  /**
   * An engine client in place of the target's socket: a simulated engine
   * (SimulatedDockerEngine, for simulated agents), never a real one.
   */
  engine?: Dockerode;
}

export interface SupervisorEvents {
  /** The engine answered and its event stream is open. */
  available: [engineVersion: string | null];
  unavailable: [reason: string];
  /** A snapshot was acknowledged by the server (tests, logs). */
  snapshotSent: [count: number];
  changesSent: [containers: number, removed: number];
}

/** Actions of Docker's container events that can change what we report. */
const RELEVANT = new Set([
  'create', 'start', 'restart', 'die', 'stop', 'kill', 'pause', 'unpause', 'destroy', 'rename', 'update', 'oom', 'health_status',
]);

function acked(ack: unknown): boolean {
  return !!ack && typeof ack === 'object' && (ack as { ok?: unknown }).ok === true;
}

export class ContainerSupervisor extends EventEmitter<SupervisorEvents> {
  private docker: Dockerode | null = null;
  private status: DockerStatus;
  private events: NodeJS.ReadableStream | null = null;
  private readonly backoff: Backoff;
  private readonly logger: Logger;
  private readonly debounceMs: number;
  private retryTimer: NodeJS.Timeout | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private readonly pending = new Set<string>();
  private queue: Promise<void> = Promise.resolve();
  private stopped = true;
  /** Bumped at every engine (dis)connect: work of an older engine connection is dropped. */
  private generation = 0;
  /** The server may not hold what the engine holds: the next chance sends a snapshot. */
  private needSnapshot = true;
  /**
   * What the server was last told of each container, without Docker's
   * status words ("Up 3 seconds" changes by itself; `startedAt` says it):
   * a container read again that says nothing new is not sent again (the
   * second look after a start, mostly).
   */
  private readonly told = new Map<string, string>();

  constructor(private readonly options: SupervisorOptions) {
    super();
    this.logger = (options.logger ?? silentLogger).child({ docker: describeTarget(options.target) });
    this.debounceMs = options.debounceMs ?? 150;
    this.backoff = new Backoff(options.maxBackoffMs ?? 30_000, options.rng);
    this.status = { available: false, reason: 'not checked yet', engineVersion: null };
  }

  get dockerStatus(): DockerStatus {
    return this.status;
  }

  /** The connected engine, or null while there is none. */
  get client(): Dockerode | null {
    return this.status.available ? this.docker : null;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.generation++;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.retryTimer = this.flushTimer = null;
    this.pending.clear();
    this.closeEvents();
  }

  /** The server connection is (again) ready: tell it the engine's status and, when there is one, its containers. */
  onServerReady(): void {
    this.needSnapshot = true;
    this.enqueue(() => this.sendStatus());
    if (this.status.available) this.enqueue(() => this.sendSnapshot());
  }

  /** Something (an operation) changed a container: read it again without waiting for its event. */
  touch(containerId: string): void {
    this.noteChange(containerId);
  }

  // ---------------------------------------------------------------- engine connection

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const gen = ++this.generation;
    const missing = this.options.engine ? null : targetMissing(this.options.target);
    if (missing) return this.unavailable(gen, missing);
    try {
      this.docker ??= this.options.engine ?? dockerClient(this.options.target);
      const version = await this.docker.version();
      if (gen !== this.generation) return;
      const events = (await this.docker.getEvents({ filters: { type: ['container'] } })) as NodeJS.ReadableStream;
      if (gen !== this.generation) {
        (events as unknown as { destroy?: () => void }).destroy?.();
        return;
      }
      this.watch(gen, events);
      this.backoff.reset();
      this.status = { available: true, reason: null, engineVersion: version.Version ? String(version.Version).slice(0, 64) : null };
      this.logger.info('connected to the Docker engine', { engineVersion: this.status.engineVersion });
      this.needSnapshot = true;
      this.enqueue(() => this.sendStatus());
      this.enqueue(() => this.sendSnapshot());
      this.emit('available', this.status.engineVersion);
    } catch (err) {
      this.unavailable(gen, explain(err, this.options.target));
    }
  }

  private watch(gen: number, events: NodeJS.ReadableStream): void {
    this.events = events;
    let buffered = '';
    events.setEncoding?.('utf8');
    events.on('data', (data: string | Buffer) => {
      if (gen !== this.generation) return;
      buffered += typeof data === 'string' ? data : data.toString('utf8');
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line) this.onEngineEvent(line);
      }
      if (buffered.length > 1024 * 1024) buffered = ''; // no event is this long: not Docker speaking
    });
    const lost = (why: string) => (err?: unknown) => {
      if (gen !== this.generation) return;
      this.unavailable(gen, err ? `${why}: ${dockerError(err)}` : why);
    };
    events.on('error', lost(`lost the Docker engine at ${describeTarget(this.options.target)}`));
    events.on('end', lost('the Docker engine closed its event stream (restarted or stopped)'));
    events.on('close', lost('the Docker engine closed its event stream (restarted or stopped)'));
  }

  private onEngineEvent(line: string): void {
    let e: { Type?: string; Action?: string; id?: string; Actor?: { ID?: string } };
    try {
      e = JSON.parse(line);
    } catch {
      return;
    }
    if (e.Type !== 'container' || typeof e.Action !== 'string') return;
    const action = e.Action.split(':')[0]!.trim();
    if (!RELEVANT.has(action)) return;
    const id = (e.Actor?.ID ?? e.id ?? '').toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(id)) return;
    this.noteChange(id);
    // The engine lists published ports a moment after `start`: look once more so they are not missed.
    if (action === 'start') {
      const gen = this.generation;
      setTimeout(() => gen === this.generation && this.noteChange(id), 1000).unref();
    }
  }

  private unavailable(gen: number, reason: string): void {
    if (gen !== this.generation || this.stopped) return;
    this.generation++;
    this.closeEvents();
    this.pending.clear();
    const was = this.status;
    this.status = { available: false, reason, engineVersion: null };
    if (was.available || was.reason !== reason) {
      this.logger.warn('Docker engine unavailable', { reason });
      this.enqueue(() => this.sendStatus());
      this.emit('unavailable', reason);
    }
    const delay = this.backoff.next();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.connect();
    }, delay);
  }

  private closeEvents(): void {
    const ev = this.events;
    this.events = null;
    if (!ev) return;
    ev.removeAllListeners();
    ev.on('error', () => undefined);
    (ev as unknown as { destroy?: () => void }).destroy?.();
  }

  // ---------------------------------------------------------------- to the server

  private noteChange(id: string): void {
    this.pending.add(id);
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      this.enqueue(() => this.flush());
    }, this.debounceMs);
  }

  private enqueue(task: () => Promise<void>): void {
    this.queue = this.queue.then(task).catch((err) => this.logger.warn('container report failed', { err: dockerError(err) }));
  }

  private async sendStatus(): Promise<void> {
    if (!this.options.link.ready) return;
    const ack = await this.options.link.request(AgentEvents.dockerStatus, this.status).catch(() => null);
    if (!acked(ack)) this.logger.debug('docker:status not acknowledged');
  }

  private async sendSnapshot(): Promise<void> {
    const docker = this.client;
    if (!docker || !this.options.link.ready || !this.needSnapshot) return;
    const gen = this.generation;
    this.pending.clear(); // the snapshot reads everything anyway
    let containers: Container[];
    try {
      containers = await readContainers(docker);
    } catch (err) {
      return this.unavailable(gen, `lost the Docker engine at ${describeTarget(this.options.target)} while listing containers: ${dockerError(err)}`);
    }
    const snapshotId = randomUUID();
    const size = CONTAINER_LIMITS.snapshotPartMax;
    for (let i = 0; i === 0 || i < containers.length; i += size) {
      const part = containers.slice(i, i + size);
      const last = i + size >= containers.length;
      const ack = await this.options.link.request(AgentEvents.containersSnapshot, { snapshotId, containers: part, last }).catch(() => null);
      if (!acked(ack)) {
        this.logger.warn('container snapshot not acknowledged; sent again at the next connect', { ack });
        return; // needSnapshot stays set
      }
    }
    this.needSnapshot = false;
    this.told.clear();
    for (const c of containers) this.told.set(c.id, fingerprint(c));
    this.logger.info('container snapshot sent', { containers: containers.length });
    this.emit('snapshotSent', containers.length);
  }

  private async flush(): Promise<void> {
    const ids = [...this.pending];
    this.pending.clear();
    const docker = this.client;
    if (!docker || ids.length === 0) return;
    if (!this.options.link.ready) {
      this.needSnapshot = true; // the next ready sends everything
      return;
    }
    if (this.needSnapshot) return this.sendSnapshot();
    const gen = this.generation;
    let now: Container[];
    try {
      now = await readContainers(docker, ids);
    } catch (err) {
      return this.unavailable(gen, `lost the Docker engine at ${describeTarget(this.options.target)} while reading containers: ${dockerError(err)}`);
    }
    const present = new Set(now.map((c) => c.id));
    const removed = ids.filter((id) => !present.has(id));
    const prints = new Map(now.map((c) => [c.id, fingerprint(c)]));
    const changed = now.filter((c) => this.told.get(c.id) !== prints.get(c.id));
    if (changed.length === 0 && removed.length === 0) return;
    const max = CONTAINER_LIMITS.changesMax;
    for (let i = 0; i < Math.max(changed.length, removed.length); i += max) {
      const payload = { containers: changed.slice(i, i + max), removed: removed.slice(i, i + max) };
      const ack = await this.options.link.request(AgentEvents.containersChanged, payload).catch(() => null);
      if (!acked(ack)) {
        this.logger.warn('container change not acknowledged; a snapshot follows', { ack });
        this.needSnapshot = true;
        if (this.options.link.ready) this.enqueue(() => this.sendSnapshot());
        return;
      }
      for (const c of payload.containers) this.told.set(c.id, prints.get(c.id)!);
      for (const id of payload.removed) this.told.delete(id);
    }
    this.emit('changesSent', changed.length, removed.length);
  }
}

function fingerprint(c: Container): string {
  const { status: _words, ...facts } = c;
  return JSON.stringify(facts);
}

function explain(err: unknown, target: DockerTarget): string {
  const code = (err as { code?: unknown })?.code;
  const where = describeTarget(target);
  if (code === 'EACCES') return `permission denied on ${where}: the agent's user needs access to the Docker socket (the docker group)`;
  if (code === 'ECONNREFUSED' || code === 'ENOENT') return `nothing answers on ${where} (is dockerd running?)`;
  return `Docker engine at ${where} did not answer: ${dockerError(err)}`;
}
