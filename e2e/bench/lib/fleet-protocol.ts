/** Messages between the benchmark runner and its simulated-agent worker processes (IPC). */

export interface AgentTuning {
  /** Default: the agent's own (PRESENCE.heartbeatIntervalMs). */
  heartbeatMs?: number;
  /** Default: the agent's own (60 s). */
  maxBackoffMs?: number;
  /** Outbox bound per agent; the agent's default is 64 MiB, far too much for thousands in one process. */
  outboxBytes?: number;
  ackTimeoutMs?: number;
}

export type ToWorker =
  | {
      cmd: 'init';
      /** 'kapitan': enrol over REST and speak to the Kapitan server. 'baseline': the bare relay (no enrolment). */
      role: 'kapitan' | 'baseline';
      serverUrl: string;
      /** Global index of this worker's first agent. */
      baseIndex: number;
      count: number;
      /** Enrolment token (role kapitan). */
      token?: string;
      enrolConcurrency?: number;
      tuning: AgentTuning;
      /** Record when each chunk is cut and each output message first sent (for latencies). */
      stampSends?: boolean;
      /**
       * Containers of each agent's simulated Docker engine (SimulatedDockerEngine
       * behind the agent's own supervisor); 0 or absent: no container supervision.
       */
      containers?: number;
      /** Give every agent the agent's own metrics sampler at this idle interval (started by `metrics`); absent: none. */
      metricsIntervalMs?: number;
    }
  /** Start (each agent at a random moment of its first interval, as agents started at different times would) or stop the samplers. */
  | { cmd: 'metrics'; on: boolean }
  /**
   * Each agent restarts `perAgent` of its containers, each at a random moment
   * within `windowMs`; the container's label `kapitan.bench.at` carries the
   * moment (wall-clock ms) of its Docker events.
   */
  | { cmd: 'containerBurst'; perAgent: number; windowMs: number }
  /** Start the next `count` agents (default: all that are not started yet). */
  | { cmd: 'connect'; perSecond: number; count?: number }
  /** Start counting agents that come back (ready again) from now on. */
  | { cmd: 'mark' }
  | { cmd: 'collect' }
  | { cmd: 'forget' }
  | { cmd: 'stop' };

export interface RunRecord {
  executionId: string;
  machineIndex: number;
  dispatchMs: number;
  startMs: number;
  /** When the script finished writing (not when the server acknowledged). */
  endMs: number;
  /** When the server acknowledged `execution:finished` (so every chunk is stored); NaN if not (yet). */
  doneMs: number;
  lines: number;
  chunks: number;
  bytes: number;
  lastSeq: number;
  /** sha256 (hex) of every chunk's data, in sequence order. */
  sha256: string;
  status: string;
  duplicateDispatches: number;
}

export interface WorkerStatus {
  type: 'status';
  worker: number;
  agents: number;
  ready: number;
  /** Agents that became ready since the last `mark`. */
  back: number;
  /** Agents that lost their connection since the last `mark`. */
  down: number;
  connectErrors: number;
  running: number;
  finished: number;
  done: number;
  outboxBytes: number;
  refused: number;
  dropped: number;
  /** Container snapshots the server acknowledged. */
  snapshots: number;
  /** `containers:changed` messages acknowledged, and the containers they carried. */
  changeMessages: number;
  changedContainers: number;
  /** Container restarts done by `containerBurst` so far. */
  burstRestarts: number;
  /** Metrics samples sent, acknowledged ok (stored or within the raw interval), refused, and failed (no ack in time, not connected). */
  metricsSent: number;
  metricsAcked: number;
  metricsRefused: number;
  metricsFailed: number;
}

export type FromWorker =
  | { type: 'inited'; worker: number; machines: { index: number; machineId: string }[]; enrolMs: number }
  | { type: 'connected'; worker: number }
  | WorkerStatus
  | {
      type: 'collected';
      worker: number;
      runs: RunRecord[];
      sends: [key: string, ms: number][];
      emits: [key: string, ms: number][];
      metricsAckMs: number[];
      /**
       * Each stamped container (`machineId:containerId:kapitan.bench.at`) in
       * the first `containers:changed` that carried it: when the agent emitted
       * it and when the server acknowledged it (NaN: not acknowledged).
       */
      patches: [key: string, emitMs: number, ackMs: number][];
    }
  | { type: 'error'; worker: number; message: string }
  | { type: 'ok'; worker: number; cmd: string };
