/**
 * Every socket event crossing `/agent` or `/live`, declared once: its name,
 * its payload schema and its type. Server, agent and dashboard use the four
 * maps below as the generics of socket.io's `Server<…>` / `Socket<…>`, and
 * parse every payload they receive with the schema of its event.
 */
import { z } from 'zod';
import { ErrorBodySchema, IdSchema, IsoDateSchema } from './common';
import { DeliveryDispatchSchema, DeliveryFinishedSchema, DeliveryProgressSchema, LiveDeliveryEventSchema, type DeliveryDispatch, type DeliveryFinished, type DeliveryProgress, type LiveDeliveryEvent } from './deliveries';
import {
  CONTAINER_LIMITS,
  ContainerIdSchema,
  ContainerLogLineSchema,
  ContainerOperationSchema,
  ContainerSchema,
  CreateContainerRequestSchema,
  ContainerOperationKindSchema,
  DockerStatusSchema,
  MachineContainerSchema,
  MachineDockerStatusSchema,
} from './containers';
import { ExecutionSummarySchema, OutputChunkSchema } from './executions';
import { LIMITS } from './limits';
import { MachineFactsSchema, MachineSchema } from './machines';
import { ReportedPolicySchema } from './policy';
import {
  LiveHostMetricsEventSchema,
  LiveMetricsSampleEventSchema,
  MetricsSampleSchema,
  MetricsWatchSchema,
  SubscribeMachineMetricsSchema,
  type LiveHostMetricsEvent,
  type LiveMetricsSampleEvent,
  type MetricsSample,
  type MetricsWatch,
  type SubscribeMachineMetrics,
} from './metrics';
import { SECRET_LIMITS, SecretNameSchema, SecretValueSchema } from './secrets';

export const AGENT_NAMESPACE = '/agent';
export const LIVE_NAMESPACE = '/live';

/** Every ack is either `{ ok: true, ... }` or `{ ok: false, error }`. */
export type Ack<T extends object = object> = ({ ok: true } & T) | { ok: false; error: ErrorAckBody };
export type ErrorAckBody = z.infer<typeof ErrorAckBodySchema>;
export type AckFn<T extends object = object> = (ack: Ack<T>) => void;

const ErrorAckBodySchema = ErrorBodySchema.pick({ code: true, message: true, details: true }).extend({
  /** With `unavailable`: when to try again; the sender is busy, not failing, so the wait is not a backoff step. */
  retryAfterMs: z.number().int().min(0).max(3_600_000).optional(),
});
/** The runtime schema of an `Ack<T>` whose success side carries `body`: what a receiver parses an ack with. */
export function ackSchema<S extends z.ZodRawShape>(body: z.ZodObject<S>) {
  return z.discriminatedUnion('ok', [body.extend({ ok: z.literal(true) }), z.object({ ok: z.literal(false), error: ErrorAckBodySchema })]);
}
export const AckSchema = ackSchema(z.object({}));

/** Compiles only when every event of `M` has a name in `C`: the name constants cannot fall behind their map. */
type NamesEvery<C extends Record<string, PropertyKey>, M> = [Exclude<keyof M, C[keyof C]>] extends [never] ? true : { unnamed: Exclude<keyof M, C[keyof C]> };

// ---------------------------------------------------------------- /agent

/** Handshake `auth` of an agent socket. */
export const AgentHandshakeAuthSchema = z.strictObject({
  credential: z.string().min(1).max(200),
});
export type AgentHandshakeAuth = z.infer<typeof AgentHandshakeAuthSchema>;

export const AgentHelloSchema = z.strictObject({
  facts: MachineFactsSchema,
  /** Executions this agent process is running or still holds unacknowledged output for. */
  activeExecutionIds: z.array(IdSchema).max(10_000),
  /** The client policy this agent enforces (absent: an agent older than client policies; shown as unknown). */
  policy: ReportedPolicySchema.optional(),
});
export type AgentHello = z.infer<typeof AgentHelloSchema>;
/** An execution named in a hello that the server refused to attach to this socket, and why. */
export const HelloRefusalSchema = z.strictObject({ executionId: IdSchema, code: z.string() });
export type HelloRefusal = z.infer<typeof HelloRefusalSchema>;
export const AgentHelloAckBodySchema = z.object({
  machineId: IdSchema,
  serverTime: IsoDateSchema,
  /**
   * Named `activeExecutionIds` that are not this machine's as the server
   * stores them (another machine's, or unknown): nothing the agent sends for
   * them is accepted. Absent when every id was accepted.
   */
  refused: z.array(HelloRefusalSchema).optional(),
});
export type AgentHelloAck = Ack<z.infer<typeof AgentHelloAckBodySchema>>;
export const AgentHelloAckSchema = ackSchema(AgentHelloAckBodySchema);

export const AgentHeartbeatSchema = z.strictObject({
  at: z.iso.datetime({ offset: true }),
  load1: z.number().min(0).optional(),
  memoryFreeBytes: z.number().int().min(0).optional(),
});
export type AgentHeartbeat = z.infer<typeof AgentHeartbeatSchema>;

/** Server → agent: run this. Delivery is at-least-once; the agent de-duplicates by `executionId`. */
export const ExecutionDispatchSchema = z.strictObject({
  executionId: IdSchema,
  script: z.string().max(LIMITS.scriptMaxBytes),
  args: z.array(z.string().max(LIMITS.argMax)).max(LIMITS.argsMax),
  env: z.record(z.string(), z.string().max(LIMITS.envValueMax)),
  cwd: z.string().max(LIMITS.cwdMax).nullable(),
  timeoutSeconds: z.number().int().min(1),
  /**
   * The run's project secrets, name → value, injected over `env`. Resolved
   * by the server at each dispatch and never stored with the execution;
   * absent when the run references none.
   */
  secretEnv: z.record(SecretNameSchema, SecretValueSchema).optional(),
  /** Values to hide from the output (see maskSecrets); the agent masks before anything is spooled or sent. */
  masks: z.array(SecretValueSchema).max(SECRET_LIMITS.referencesMax).optional(),
});
export type ExecutionDispatch = z.infer<typeof ExecutionDispatchSchema>;

export const ExecutionCancelSchema = z.strictObject({ executionId: IdSchema });
export type ExecutionCancel = z.infer<typeof ExecutionCancelSchema>;

/**
 * Server → agent, just before the server drops the socket for good: the
 * machine was revoked, or it or its project deleted. Final: the agent stops,
 * remembers it, and does not reconnect (the handshake would be refused with
 * `machine_revoked` anyway).
 */
export const AgentRevokedSchema = z.strictObject({ reason: z.string().max(500) });
export type AgentRevoked = z.infer<typeof AgentRevokedSchema>;

/**
 * Server → agent and server → dashboard, just before a node that is
 * stopping (SIGTERM) drops the socket: not final, and not the client's
 * fault. The client reconnects at once (no backoff), and the load balancer,
 * which no longer sends anything to this node, takes it to another.
 */
export const ServerDrainingSchema = z.strictObject({ reason: z.string().max(500) });
export type ServerDraining = z.infer<typeof ServerDrainingSchema>;

export const ExecutionStartedSchema = z.strictObject({
  executionId: IdSchema,
  startedAt: z.iso.datetime({ offset: true }),
  pid: z.number().int().min(0).optional(),
});
export type ExecutionStarted = z.infer<typeof ExecutionStartedSchema>;

export const ExecutionOutputSchema = z.strictObject({
  executionId: IdSchema,
  chunks: z.array(OutputChunkSchema).min(1).max(LIMITS.chunksPerMessageMax),
});
export type ExecutionOutput = z.infer<typeof ExecutionOutputSchema>;
/** Sent once every chunk of the message is stored: the agent may forget them. */
export const ExecutionOutputAckBodySchema = z.object({ stored: z.number().int().min(0) });
export type ExecutionOutputAck = Ack<z.infer<typeof ExecutionOutputAckBodySchema>>;
export const ExecutionOutputAckSchema = ackSchema(ExecutionOutputAckBodySchema);

/** `refused`: the client policy refused the script before anything ran (exitCode and signal null, lastSeq -1, reason set). */
export const AgentFinalStatusSchema = z.enum(['succeeded', 'failed', 'cancelled', 'timed_out', 'lost', 'refused']);
export const ExecutionFinishedSchema = z.strictObject({
  executionId: IdSchema,
  status: AgentFinalStatusSchema,
  exitCode: z.number().int().nullable(),
  signal: z.string().max(32).nullable(),
  finishedAt: z.iso.datetime({ offset: true }),
  /** Sequence number of the last chunk written; -1 when there was no output. */
  lastSeq: z.number().int().min(-1),
  reason: z.string().max(1000).nullable().optional(),
});
export type ExecutionFinished = z.infer<typeof ExecutionFinishedSchema>;

// ---- containers (agent → server)

/**
 * The engine's containers, in parts of at most CONTAINER_LIMITS.snapshotPartMax.
 * Every part of one snapshot carries the same `snapshotId`; the last part
 * (`last: true`) makes the snapshot replace what the server held: a
 * container no part named is gone.
 */
export const ContainersSnapshotSchema = z.strictObject({
  snapshotId: IdSchema,
  containers: z.array(ContainerSchema).max(CONTAINER_LIMITS.snapshotPartMax),
  last: z.boolean(),
});
export type ContainersSnapshot = z.infer<typeof ContainersSnapshotSchema>;

/** A patch from Docker's event stream: containers as they are now, and ids that no longer exist. */
export const ContainersChangedSchema = z
  .strictObject({
    containers: z.array(ContainerSchema).max(CONTAINER_LIMITS.changesMax),
    removed: z.array(ContainerIdSchema).max(CONTAINER_LIMITS.changesMax),
  })
  .refine((c) => c.containers.length + c.removed.length > 0, 'an empty change');
export type ContainersChanged = z.infer<typeof ContainersChangedSchema>;

export const ContainerOperationStartedSchema = z.strictObject({
  operationId: IdSchema,
  startedAt: z.iso.datetime({ offset: true }),
});
export type ContainerOperationStarted = z.infer<typeof ContainerOperationStartedSchema>;

export const ContainerOperationFinishedSchema = z.strictObject({
  operationId: IdSchema,
  /** `refused`: the client policy refused it; `error` is the reason. */
  status: z.enum(['succeeded', 'failed', 'refused']),
  /** Docker's error text, or why waiting for the container to run ended. */
  error: z.string().max(CONTAINER_LIMITS.errorMax).nullable(),
  containerId: ContainerIdSchema.nullable(),
  finishedAt: z.iso.datetime({ offset: true }),
});
export type ContainerOperationFinished = z.infer<typeof ContainerOperationFinishedSchema>;

/**
 * Lines of a followed container log. Lossy by design: the engine keeps the
 * log, so a viewer that missed lines can follow again from a tail; `dropped`
 * counts lines the agent let go because the server was not keeping up.
 */
export const ContainerLogsSchema = z.strictObject({
  streamId: IdSchema,
  lines: z.array(ContainerLogLineSchema).max(CONTAINER_LIMITS.logLinesPerMessageMax),
  dropped: z.number().int().min(0).optional(),
  /** The follow ended (the container stopped, or the agent gave up); `reason` says why. */
  ended: z.boolean().optional(),
  reason: z.string().max(CONTAINER_LIMITS.errorMax).optional(),
});
export type ContainerLogs = z.infer<typeof ContainerLogsSchema>;

// ---- containers (server → agent)

/** Do this to a container (or create one). At least once; the agent applies each operation id once. */
export const ContainerOperationDispatchSchema = z.strictObject({
  operationId: IdSchema,
  kind: ContainerOperationKindSchema,
  containerId: ContainerIdSchema.nullable(),
  spec: CreateContainerRequestSchema.nullable(),
});
export type ContainerOperationDispatch = z.infer<typeof ContainerOperationDispatchSchema>;

/**
 * Follow a container's log from `tail` lines back. Sent again while someone
 * watches: a follow that is not renewed within `leaseMs` stops by itself, so
 * a server node that died with the watcher's socket does not leave the agent
 * reading forever.
 */
export const ContainerLogsFollowSchema = z.strictObject({
  streamId: IdSchema,
  containerId: ContainerIdSchema,
  tail: z.number().int().min(0).max(CONTAINER_LIMITS.logTailMax),
  leaseMs: z.number().int().min(1000).max(600_000),
});
export type ContainerLogsFollow = z.infer<typeof ContainerLogsFollowSchema>;
export const ContainerLogsStopSchema = z.strictObject({ streamId: IdSchema });
export type ContainerLogsStop = z.infer<typeof ContainerLogsStopSchema>;

export const AgentEvents = {
  hello: 'agent:hello',
  heartbeat: 'agent:heartbeat',
  executionStarted: 'execution:started',
  executionOutput: 'execution:output',
  executionFinished: 'execution:finished',
  deliveryProgress: 'delivery:progress',
  deliveryFinished: 'delivery:finished',
  dockerStatus: 'docker:status',
  containersSnapshot: 'containers:snapshot',
  containersChanged: 'containers:changed',
  containerOperationStarted: 'container-operation:started',
  containerOperationFinished: 'container-operation:finished',
  containerLogs: 'container:logs',
  metricsSample: 'metrics:sample',
} as const satisfies Record<string, keyof AgentToServerEventMap>;

export const ServerToAgentEvents = {
  dispatch: 'execution:dispatch',
  cancel: 'execution:cancel',
  revoked: 'agent:revoked',
  draining: 'server:draining',
  deliver: 'delivery:dispatch',
  containerOperation: 'container-operation:dispatch',
  containerLogsFollow: 'container:logs:follow',
  containerLogsStop: 'container:logs:stop',
  metricsWatch: 'metrics:watch',
} as const satisfies Record<string, keyof ServerToAgentEventMap>;

/** agent → server. Every event takes an ack; an event without one is refused. */
export interface AgentToServerEventMap {
  'agent:hello': (p: AgentHello, ack: (a: AgentHelloAck) => void) => void;
  'agent:heartbeat': (p: AgentHeartbeat, ack: AckFn) => void;
  'execution:started': (p: ExecutionStarted, ack: AckFn) => void;
  'execution:output': (p: ExecutionOutput, ack: (a: ExecutionOutputAck) => void) => void;
  'execution:finished': (p: ExecutionFinished, ack: AckFn) => void;
  'delivery:progress': (p: DeliveryProgress, ack: AckFn) => void;
  'delivery:finished': (p: DeliveryFinished, ack: AckFn) => void;
  'docker:status': (p: z.infer<typeof DockerStatusSchema>, ack: AckFn) => void;
  'containers:snapshot': (p: ContainersSnapshot, ack: AckFn) => void;
  'containers:changed': (p: ContainersChanged, ack: AckFn) => void;
  'container-operation:started': (p: ContainerOperationStarted, ack: AckFn) => void;
  'container-operation:finished': (p: ContainerOperationFinished, ack: AckFn) => void;
  'container:logs': (p: ContainerLogs, ack: AckFn) => void;
  /** Lossy: a sample the agent could not send is not resent, the next one follows. */
  'metrics:sample': (p: MetricsSample, ack: AckFn) => void;
}
/** server → agent. */
export interface ServerToAgentEventMap {
  'execution:dispatch': (p: ExecutionDispatch) => void;
  'execution:cancel': (p: ExecutionCancel) => void;
  'agent:revoked': (p: AgentRevoked) => void;
  'server:draining': (p: ServerDraining) => void;
  'delivery:dispatch': (p: DeliveryDispatch) => void;
  'container-operation:dispatch': (p: ContainerOperationDispatch) => void;
  'container:logs:follow': (p: ContainerLogsFollow) => void;
  'container:logs:stop': (p: ContainerLogsStop) => void;
  'metrics:watch': (p: MetricsWatch) => void;
}

true satisfies NamesEvery<typeof AgentEvents, AgentToServerEventMap>;
true satisfies NamesEvery<typeof ServerToAgentEvents, ServerToAgentEventMap>;

/** Runtime schemas of what the server accepts on `/agent`, by event name. */
export const agentToServerSchemas = {
  'agent:hello': AgentHelloSchema,
  'agent:heartbeat': AgentHeartbeatSchema,
  'execution:started': ExecutionStartedSchema,
  'execution:output': ExecutionOutputSchema,
  'execution:finished': ExecutionFinishedSchema,
  'delivery:progress': DeliveryProgressSchema,
  'delivery:finished': DeliveryFinishedSchema,
  'docker:status': DockerStatusSchema,
  'containers:snapshot': ContainersSnapshotSchema,
  'containers:changed': ContainersChangedSchema,
  'container-operation:started': ContainerOperationStartedSchema,
  'container-operation:finished': ContainerOperationFinishedSchema,
  'container:logs': ContainerLogsSchema,
  'metrics:sample': MetricsSampleSchema,
} as const satisfies Record<keyof AgentToServerEventMap, z.ZodType>;

/** Runtime schemas of what the agent accepts. */
export const serverToAgentSchemas = {
  'execution:dispatch': ExecutionDispatchSchema,
  'execution:cancel': ExecutionCancelSchema,
  'agent:revoked': AgentRevokedSchema,
  'server:draining': ServerDrainingSchema,
  'delivery:dispatch': DeliveryDispatchSchema,
  'container-operation:dispatch': ContainerOperationDispatchSchema,
  'container:logs:follow': ContainerLogsFollowSchema,
  'container:logs:stop': ContainerLogsStopSchema,
  'metrics:watch': MetricsWatchSchema,
} as const satisfies Record<keyof ServerToAgentEventMap, z.ZodType>;

// ---------------------------------------------------------------- /live

/** Handshake `auth` of a dashboard socket: the JWT, never an ambient cookie. */
export const LiveHandshakeAuthSchema = z.strictObject({ token: z.string().min(1).max(4096) });

export const SubscribeProjectSchema = z.strictObject({ projectId: IdSchema });
export type SubscribeProject = z.infer<typeof SubscribeProjectSchema>;

export const SubscribeExecutionSchema = z.strictObject({
  executionId: IdSchema,
  /** Send stored output from this sequence number on, then the live tail. */
  fromSeq: z.number().int().min(0).default(0),
});
export type SubscribeExecution = z.input<typeof SubscribeExecutionSchema>;

export const ExecutionHistorySchema = z.strictObject({
  executionId: IdSchema,
  fromSeq: z.number().int().min(0),
  limit: z.number().int().min(1).max(LIMITS.logPageMax).optional(),
});
export type ExecutionHistory = z.infer<typeof ExecutionHistorySchema>;

export const LiveMachineEventSchema = z.object({ projectId: IdSchema, machine: MachineSchema });
export type LiveMachineEvent = z.infer<typeof LiveMachineEventSchema>;
export const LiveExecutionEventSchema = z.object({ projectId: IdSchema, execution: ExecutionSummarySchema });
export type LiveExecutionEvent = z.infer<typeof LiveExecutionEventSchema>;
export const LiveOutputEventSchema = z.object({ executionId: IdSchema, chunks: z.array(OutputChunkSchema) });
export type LiveOutputEvent = z.infer<typeof LiveOutputEventSchema>;
/** A machine's containers changed: `snapshot` means `containers` is now the whole list. */
export const LiveContainersEventSchema = z.object({
  projectId: IdSchema,
  machineId: IdSchema,
  snapshot: z.boolean(),
  containers: z.array(MachineContainerSchema),
  removed: z.array(ContainerIdSchema),
});
export type LiveContainersEvent = z.infer<typeof LiveContainersEventSchema>;
export const LiveDockerStatusEventSchema = z.object({ projectId: IdSchema, status: MachineDockerStatusSchema });
export type LiveDockerStatusEvent = z.infer<typeof LiveDockerStatusEventSchema>;
export const LiveContainerOperationEventSchema = z.object({ projectId: IdSchema, operation: ContainerOperationSchema });
export type LiveContainerOperationEvent = z.infer<typeof LiveContainerOperationEventSchema>;
export const LiveContainerLogsEventSchema = z.object({
  streamId: IdSchema,
  lines: z.array(ContainerLogLineSchema),
  dropped: z.number().int().min(0).optional(),
  ended: z.boolean().optional(),
  reason: z.string().optional(),
});
export type LiveContainerLogsEvent = z.infer<typeof LiveContainerLogsEventSchema>;

export const SubscribeContainerLogsSchema = z.strictObject({
  machineId: IdSchema,
  containerId: ContainerIdSchema,
  /** Lines of the log before now to start with. */
  tail: z.number().int().min(0).max(CONTAINER_LIMITS.logTailMax).default(1000),
});
export type SubscribeContainerLogs = z.input<typeof SubscribeContainerLogsSchema>;
export const ContainerLogsSubscribedAckBodySchema = z.object({ streamId: IdSchema });
export type ContainerLogsSubscribedAck = Ack<z.infer<typeof ContainerLogsSubscribedAckBodySchema>>;
export const ContainerLogsSubscribedAckSchema = ackSchema(ContainerLogsSubscribedAckBodySchema);
export const UnsubscribeContainerLogsSchema = z.strictObject({ streamId: IdSchema });

/** Every server → dashboard payload's schema, for receivers that parse (the dashboard's tests). */
export const liveServerToClientSchemas = {
  'machine:updated': LiveMachineEventSchema,
  'execution:updated': LiveExecutionEventSchema,
  'execution:output': LiveOutputEventSchema,
  'delivery:updated': LiveDeliveryEventSchema,
  'containers:updated': LiveContainersEventSchema,
  'docker:status': LiveDockerStatusEventSchema,
  'container-operation:updated': LiveContainerOperationEventSchema,
  'container:logs': LiveContainerLogsEventSchema,
  'metrics:sample': LiveMetricsSampleEventSchema,
  'metrics:host': LiveHostMetricsEventSchema,
  'server:draining': ServerDrainingSchema,
} as const satisfies Record<keyof LiveServerToClientEventMap, z.ZodType>;

export const ExecutionChunksAckBodySchema = z.object({
  execution: ExecutionSummarySchema,
  chunks: z.array(OutputChunkSchema),
  /** Next sequence number after the returned history. */
  nextSeq: z.number().int().min(0),
});
export type ExecutionChunksAck = Ack<z.infer<typeof ExecutionChunksAckBodySchema>>;
export const ExecutionChunksAckSchema = ackSchema(ExecutionChunksAckBodySchema);

export const LiveClientEvents = {
  subscribeProject: 'subscribe:project',
  unsubscribeProject: 'unsubscribe:project',
  subscribeExecution: 'subscribe:execution',
  unsubscribeExecution: 'unsubscribe:execution',
  executionHistory: 'execution:history',
  subscribeContainerLogs: 'subscribe:container-logs',
  unsubscribeContainerLogs: 'unsubscribe:container-logs',
  subscribeMachineMetrics: 'subscribe:machine-metrics',
  unsubscribeMachineMetrics: 'unsubscribe:machine-metrics',
} as const satisfies Record<string, keyof LiveClientToServerEventMap>;

export const LiveServerEvents = {
  machine: 'machine:updated',
  execution: 'execution:updated',
  output: 'execution:output',
  delivery: 'delivery:updated',
  containers: 'containers:updated',
  dockerStatus: 'docker:status',
  containerOperation: 'container-operation:updated',
  containerLogs: 'container:logs',
  metricsSample: 'metrics:sample',
  hostMetrics: 'metrics:host',
  draining: 'server:draining',
} as const satisfies Record<string, keyof LiveServerToClientEventMap>;

/** dashboard → server. */
export interface LiveClientToServerEventMap {
  'subscribe:project': (p: SubscribeProject, ack: AckFn) => void;
  'unsubscribe:project': (p: SubscribeProject, ack: AckFn) => void;
  'subscribe:execution': (p: SubscribeExecution, ack: (a: ExecutionChunksAck) => void) => void;
  'unsubscribe:execution': (p: { executionId: string }, ack: AckFn) => void;
  'execution:history': (p: ExecutionHistory, ack: (a: ExecutionChunksAck) => void) => void;
  'subscribe:container-logs': (p: SubscribeContainerLogs, ack: (a: ContainerLogsSubscribedAck) => void) => void;
  'unsubscribe:container-logs': (p: { streamId: string }, ack: AckFn) => void;
  'subscribe:machine-metrics': (p: SubscribeMachineMetrics, ack: AckFn) => void;
  'unsubscribe:machine-metrics': (p: SubscribeMachineMetrics, ack: AckFn) => void;
}
/** server → dashboard. */
export interface LiveServerToClientEventMap {
  'machine:updated': (p: LiveMachineEvent) => void;
  'execution:updated': (p: LiveExecutionEvent) => void;
  'execution:output': (p: LiveOutputEvent) => void;
  'delivery:updated': (p: LiveDeliveryEvent) => void;
  'containers:updated': (p: LiveContainersEvent) => void;
  'docker:status': (p: LiveDockerStatusEvent) => void;
  'container-operation:updated': (p: LiveContainerOperationEvent) => void;
  'container:logs': (p: LiveContainerLogsEvent) => void;
  'metrics:sample': (p: LiveMetricsSampleEvent) => void;
  'metrics:host': (p: LiveHostMetricsEvent) => void;
  'server:draining': (p: ServerDraining) => void;
}

true satisfies NamesEvery<typeof LiveClientEvents, LiveClientToServerEventMap>;
true satisfies NamesEvery<typeof LiveServerEvents, LiveServerToClientEventMap>;

export const liveClientToServerSchemas = {
  'subscribe:project': SubscribeProjectSchema,
  'unsubscribe:project': SubscribeProjectSchema,
  'subscribe:execution': SubscribeExecutionSchema,
  'unsubscribe:execution': z.strictObject({ executionId: IdSchema }),
  'execution:history': ExecutionHistorySchema,
  'subscribe:container-logs': SubscribeContainerLogsSchema,
  'unsubscribe:container-logs': UnsubscribeContainerLogsSchema,
  'subscribe:machine-metrics': SubscribeMachineMetricsSchema,
  'unsubscribe:machine-metrics': SubscribeMachineMetricsSchema,
} as const satisfies Record<keyof LiveClientToServerEventMap, z.ZodType>;

/** Socket.io rooms: one name each, so every node's adapter routes the same way. */
export const Rooms = {
  machine: (machineId: string) => `machine:${machineId}`,
  /** `/agent`: every connected machine of a project, to drop them all when it is deleted. */
  projectMachines: (projectId: string) => `project-machines:${projectId}`,
  project: (projectId: string) => `project:${projectId}`,
  execution: (executionId: string) => `execution:${executionId}`,
  session: (sessionId: string) => `session:${sessionId}`,
  user: (userId: string) => `user:${userId}`,
  /**
   * `/live`: one container log follow. Named with the machine whose agent
   * feeds it, so an agent can only ever reach its own machine's streams.
   */
  containerLogs: (machineId: string, streamId: string) => `container-logs:${machineId}:${streamId}`,
  /** `/live`: the dashboards watching one machine's metrics; while it is not empty on a node, that node keeps the agent sampling fast. */
  machineMetrics: (machineId: string) => `machine-metrics:${machineId}`,
} as const;
