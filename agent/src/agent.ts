/**
 * The agent runtime: one connection, one outbox (spooled to the state
 * directory), the execution manager and the journal, wired together.
 * `kapitan-agent run` is `new Agent(…).start()`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ServerToAgentEvents, type MachineFacts } from '@kapitan/shared';
import { DEFAULT_CONFIG, type AgentConfig } from './config';
import { AgentConnection, type AgentConnectionOptions } from './connection';
import { collectFacts } from './facts';
import { CACHE_DIR, FileCache } from './file-cache';
import { deliveryChannel } from './delivery-channel';
import { DeliveryManager } from './delivery-manager';
import { FileJournal, type ExecutionJournal } from './journal';
import { silentLogger, type Logger } from './logger';
import { executionChannel } from './execution-channel';
import { ExecutionManager, type RunnerFactory } from './manager';
import { Outbox, type OutboxOptions, type OutboxSpool } from './outbox';
import { FileSpool, SPOOL_DIR } from './spool';
import { RUN_DIR, type AgentState } from './state';
import type { ExecutorOptions } from './executor';
import { DEFAULT_DOCKER_SOCKET } from './facts';
import { dockerTarget, type DockerTarget } from './containers/docker-target';
import { ContainerLogFollower } from './containers/logs';
import { containerOperationChannel } from './containers/operation-channel';
import { FileOperationJournal, MemoryOperationJournal, type OperationJournal } from './containers/operation-journal';
import { ContainerOperations } from './containers/operations';
import { ContainerSupervisor, type SupervisorOptions } from './containers/supervisor';
import { HostReader } from './metrics/host';
import { MetricsSampler } from './metrics/sampler';

/** The default deploy root inside the state directory. */
export const DEPLOY_DIR = 'deploys';

export interface AgentOptions {
  /** Server URL and credential (the enrolment state). */
  state: Pick<AgentState, 'server' | 'credential'> & Partial<AgentState>;
  /** State directory: journal and per-execution scratch directories live there. */
  stateDir: string;
  config?: Partial<AgentConfig>;
  logger?: Logger;
  /** Default: a FileJournal in the state directory. */
  journal?: ExecutionJournal;
  /**
   * Durable copy of the outbox. Default: a FileSpool in the state directory,
   * unless a journal is passed in (in-memory agents: simulated, tests); null: none.
   */
  spool?: OutboxSpool | null;
  /** Default: collectFacts(). */
  facts?: () => MachineFacts | Promise<MachineFacts>;
  /** Overrides of the connection options (tests: rng, stableAfterMs, …). */
  connection?: Partial<Omit<AgentConnectionOptions, 'serverUrl' | 'credential' | 'outbox' | 'facts' | 'activeExecutionIds'>>;
  outbox?: Partial<Omit<OutboxOptions, 'spool'>>;
  executor?: Partial<Omit<ExecutorOptions, 'workDir' | 'logger'>>;
  createRunner?: RunnerFactory;
  /**
   * Supervise the machine's Docker engine (containers, operations, logs).
   * Default: on, unless a journal is passed in (in-memory agents).
   */
  containers?: boolean;
  /** Sample metrics (default: unless a journal is handed in, as tests do). */
  metrics?: boolean;
  /** Overrides of the supervisor (tests: debounce, backoff cap). */
  supervisor?: Partial<Omit<SupervisorOptions, 'target' | 'link' | 'logger'>>;
  /** Default: DOCKER_HOST from process.env. */
  env?: NodeJS.ProcessEnv;
}

export class Agent {
  readonly config: AgentConfig;
  readonly outbox: Outbox;
  readonly journal: ExecutionJournal;
  readonly spool: OutboxSpool | null;
  readonly manager: ExecutionManager;
  readonly connection: AgentConnection;
  /** Files and images the server sends, downloaded over HTTP(S) with the machine credential. */
  readonly files: FileCache;
  readonly deliveries: DeliveryManager;
  /** Where deploys may write: KAPITAN_AGENT_DEPLOY_DIRS, else `<state dir>/deploys`. */
  readonly deployRoots: readonly string[];
  /** Null when containers are not supervised. */
  readonly containers: { supervisor: ContainerSupervisor; operations: ContainerOperations; logs: ContainerLogFollower; journal: OperationJournal } | null;
  readonly dockerTarget: DockerTarget;
  /** Host and container metrics, null when KAPITAN_AGENT_METRICS_INTERVAL_MS is 0. */
  readonly metrics: MetricsSampler | null;
  private readonly logger: Logger;
  private started = false;
  private stopped = false;

  constructor(options: AgentOptions) {
    this.config = { ...DEFAULT_CONFIG, ...options.config };
    const logger = (this.logger = options.logger ?? silentLogger);
    this.journal = options.journal ?? new FileJournal(options.stateDir, logger);
    this.spool =
      options.spool !== undefined ? options.spool : options.journal ? null : new FileSpool(path.join(options.stateDir, SPOOL_DIR), { logger });
    this.outbox = new Outbox({ maxBytes: this.config.outboxBytes, logger, ...options.outbox, ...(this.spool ? { spool: this.spool } : {}) });
    this.manager = new ExecutionManager({
      outbox: this.outbox,
      journal: this.journal,
      workDir: path.join(options.stateDir, RUN_DIR),
      executor: {
        killGraceMs: this.config.killGraceMs,
        streamLingerMs: this.config.streamLingerMs,
        partialHoldMs: this.config.partialLineHoldMs,
        ...options.executor,
      },
      createRunner: options.createRunner,
      logger,
    });
    this.dockerTarget = dockerTarget(this.config.dockerSocket || undefined, options.env ?? process.env, DEFAULT_DOCKER_SOCKET);
    const socketPath = this.dockerTarget.kind === 'unix' ? this.dockerTarget.socketPath : undefined;
    const facts = options.facts ?? (() => collectFacts({ dockerSocket: socketPath }));
    this.connection = new AgentConnection({
      serverUrl: options.state.server,
      credential: options.state.credential,
      facts,
      activeExecutionIds: () => this.manager.activeExecutionIds(),
      outbox: this.outbox,
      heartbeatIntervalMs: this.config.heartbeatMs,
      maxBackoffMs: this.config.maxBackoffMs,
      ackTimeoutMs: this.config.ackTimeoutMs,
      logger,
      ...options.connection,
    });
    this.files = new FileCache({
      dir: path.join(options.stateDir, CACHE_DIR),
      maxBytes: this.config.cacheBytes,
      serverUrl: options.state.server,
      credential: options.state.credential,
      logger,
    });
    if (this.config.deployDirs.length) this.deployRoots = this.config.deployDirs;
    else {
      const own = path.join(options.stateDir, DEPLOY_DIR);
      fs.mkdirSync(own, { recursive: true, mode: 0o700 });
      this.deployRoots = [own];
    }
    this.deliveries = new DeliveryManager({
      outbox: this.outbox,
      cache: this.files,
      stateDir: options.stateDir,
      deployRoots: this.deployRoots,
      // The same engine the container supervisor watches: the configured socket, DOCKER_HOST, or the default.
      dockerSocket: this.dockerTarget,
      logger,
    });
    const expected = options.state.machineId;
    this.connection.on('ready', (info) => {
      if (expected && info.machineId && info.machineId !== expected) {
        logger.warn('the server greets this agent as another machine than the one enrolled', { enrolled: expected, server: info.machineId });
      }
    });
    this.connection.on(ServerToAgentEvents.dispatch, (p) => this.manager.handleDispatch(p));
    this.connection.on(ServerToAgentEvents.cancel, (p) => this.manager.handleCancel(p));
    this.connection.on(ServerToAgentEvents.deliver, (p) => this.deliveries.handle(p));

    if (options.containers ?? !options.journal) {
      const link = this.connection;
      const supervisor = new ContainerSupervisor({ target: this.dockerTarget, link, logger, ...options.supervisor });
      const journal = options.journal ? new MemoryOperationJournal() : new FileOperationJournal(options.stateDir, logger);
      const operations = new ContainerOperations({
        outbox: this.outbox,
        journal,
        docker: () => ({ client: supervisor.client, reason: supervisor.dockerStatus.reason }),
        touched: (id) => supervisor.touch(id),
        logger,
      });
      const logs = new ContainerLogFollower({ link, docker: () => supervisor.client, logger });
      this.containers = { supervisor, operations, logs, journal };
      this.connection.on('ready', () => supervisor.onServerReady());
      this.connection.on(ServerToAgentEvents.containerOperation, (p) => operations.handle(p));
      this.connection.on(ServerToAgentEvents.containerLogsFollow, (p) => logs.follow(p));
      this.connection.on(ServerToAgentEvents.containerLogsStop, (p) => logs.stop(p.streamId));
    } else {
      this.containers = null;
    }

    // Off by default for in-process agents of tests (a journal handed in), like the containers: they count what reaches the server.
    if ((options.metrics ?? !options.journal) && this.config.metricsIntervalMs > 0) {
      const supervisor = this.containers?.supervisor;
      this.metrics = new MetricsSampler({
        link: this.connection,
        host: new HostReader({ stateDir: options.stateDir }),
        docker: () => supervisor?.client ?? null,
        idleIntervalMs: this.config.metricsIntervalMs,
        logger,
      });
      this.connection.on(ServerToAgentEvents.metricsWatch, (p) => this.metrics?.watch(p));
    } else {
      this.metrics = null;
    }
  }

  /** Queue what a previous run left unsent (spool), report what it left unfinished, then connect. */
  start(): void {
    if (this.started) return;
    this.started = true;
    const restored = this.outbox.restore(this.containers ? [executionChannel, deliveryChannel, containerOperationChannel] : [executionChannel, deliveryChannel]);
    if (restored.length > 0) this.logger.info('output of a previous run restored from the spool', { streams: restored.length });
    const n = this.manager.recoverFromJournal(restored);
    if (n > 0) this.logger.info('executions from a previous run will be reported', { count: n });
    const interrupted = this.containers?.operations.recover(restored) ?? 0;
    if (interrupted > 0) this.logger.warn('container operations interrupted by a restart are reported failed', { count: interrupted });
    this.containers?.supervisor.start();
    this.metrics?.start();
    this.connection.start();
  }

  /**
   * Graceful stop: terminate running scripts (they are reported `lost` on
   * the next start), give the outbox up to `drainMs` to deliver what it
   * holds, close the connection and the journal.
   */
  async stop(options: { drainMs?: number; scriptGraceMs?: number } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.manager.shutdown(options.scriptGraceMs ?? 2000);
    if (this.connection.ready && !this.outbox.isEmpty()) await this.outbox.whenEmpty(options.drainMs ?? 2000);
    this.containers?.logs.stopAll();
    this.containers?.supervisor.stop();
    this.metrics?.stop();
    this.connection.stop();
    this.outbox.detach();
    this.spool?.close();
    this.journal.close();
  }

  /**
   * Stop as if the process had died (tests of restart handling): nothing is
   * signalled, nothing more is journalled or spooled, scripts keep running.
   */
  abandon(): void {
    this.stopped = true;
    this.manager.abandon();
    this.containers?.logs.stopAll();
    this.containers?.supervisor.stop();
    this.metrics?.stop();
    this.connection.stop();
    this.outbox.clear();
    this.journal.close();
  }
}
