/**
 * Machine metrics: what an agent samples from its host and its containers,
 * what the server stores (raw samples, then coarser buckets), and what the
 * API and the dashboard read back. Socket payloads and REST bodies alike;
 * the event names are in events.ts.
 */
import { z } from 'zod';
import { IdSchema, IsoDateSchema } from './common';
import { ContainerIdSchema } from './containers';

export const METRICS_LIMITS = {
  /** Containers in one sample; an engine with more sends the first ones (by id). */
  containersPerSampleMax: 500,
  /** Any byte count: the largest integer a double holds exactly (8 PiB), well above any real host. */
  bytesMax: Number.MAX_SAFE_INTEGER,
  /** A container's CPU is per cent of one core, so it goes up to 100 × cores. */
  containerCpuPercentMax: 100 * 4096,
  /** 10 Tbit/s: above it a rate is a counter glitch, not traffic. */
  rateMax: 1.25e12,
  loadMax: 1e6,
  intervalMsMin: 200,
  intervalMsMax: 3_600_000,
  leaseMsMin: 1000,
  leaseMsMax: 600_000,
  /** Points in one REST answer (per series); a wider range must ask for a coarser resolution. */
  pointsMax: 5000,
} as const;

const Bytes = z.number().int().min(0).max(METRICS_LIMITS.bytesMax);
// zod 4 refuses NaN and ±Infinity in z.number(): a NaN cannot slip in as a number.
const HostPercent = z.number().min(0).max(100);
const Rate = z.number().min(0).max(METRICS_LIMITS.rateMax);
const Load = z.number().min(0).max(METRICS_LIMITS.loadMax);

/**
 * One host reading. Rates and CPU are over the time since the previous
 * reading, so the first reading after the agent starts has them null.
 * Disks: the filesystem of `/` and the one holding the agent's state dir
 * (the same numbers when they are the same filesystem).
 */
export const HostMetricsSchema = z
  .strictObject({
    cpuPercent: HostPercent.nullable(),
    memoryUsedBytes: Bytes,
    memoryTotalBytes: Bytes,
    diskRootUsedBytes: Bytes,
    diskRootTotalBytes: Bytes,
    diskStateUsedBytes: Bytes,
    diskStateTotalBytes: Bytes,
    netRxBytesPerSec: Rate.nullable(),
    netTxBytesPerSec: Rate.nullable(),
    load1: Load,
    load5: Load,
    load15: Load,
  })
  .refine((h) => h.memoryUsedBytes <= h.memoryTotalBytes, { message: 'memory used exceeds the total', path: ['memoryUsedBytes'] })
  .refine((h) => h.diskRootUsedBytes <= h.diskRootTotalBytes, { message: 'disk used exceeds the total', path: ['diskRootUsedBytes'] })
  .refine((h) => h.diskStateUsedBytes <= h.diskStateTotalBytes, { message: 'disk used exceeds the total', path: ['diskStateUsedBytes'] });
export type HostMetrics = z.infer<typeof HostMetricsSchema>;

/** One running container's reading from the engine's one-shot stats. */
export const ContainerMetricsSchema = z.strictObject({
  containerId: ContainerIdSchema,
  cpuPercent: z.number().min(0).max(METRICS_LIMITS.containerCpuPercentMax).nullable(),
  memoryUsedBytes: Bytes,
  /** The container's memory limit, or null when it has none (then the host's memory bounds it). */
  memoryLimitBytes: Bytes.nullable(),
});
export type ContainerMetrics = z.infer<typeof ContainerMetricsSchema>;

/** agent → server `metrics:sample`. The server stamps it with its own clock; `at` is the agent's, for the record. */
export const MetricsSampleSchema = z.strictObject({
  at: IsoDateSchema,
  host: HostMetricsSchema,
  containers: z
    .array(ContainerMetricsSchema)
    .max(METRICS_LIMITS.containersPerSampleMax)
    .refine((cs) => new Set(cs.map((c) => c.containerId)).size === cs.length, 'a container appears twice'),
});
export type MetricsSample = z.infer<typeof MetricsSampleSchema>;

/**
 * server → agent `metrics:watch`: someone watches this machine, sample every
 * `intervalMs` until `leaseMs` passes without another watch, then fall back
 * to the idle interval. Sent again while the watcher stays, by whichever
 * server node holds the watcher's socket, so a node that dies with its
 * watchers leaves nothing fast running for longer than the lease.
 */
export const MetricsWatchSchema = z.strictObject({
  intervalMs: z.number().int().min(METRICS_LIMITS.intervalMsMin).max(METRICS_LIMITS.intervalMsMax),
  leaseMs: z.number().int().min(METRICS_LIMITS.leaseMsMin).max(METRICS_LIMITS.leaseMsMax),
});
export type MetricsWatch = z.infer<typeof MetricsWatchSchema>;

// ---------------------------------------------------------------- stored and read back

/** `raw` is one stored sample per raw interval; `1m` and `1h` are averages over their bucket. `auto` picks by range. */
export const MetricsResolutionSchema = z.enum(['raw', '1m', '1h']);
export type MetricsResolution = z.infer<typeof MetricsResolutionSchema>;

/** A host point: a stored sample, or the average of the samples of a bucket (hence numbers, not integers). */
export const HostMetricsPointSchema = z.object({
  at: IsoDateSchema,
  cpuPercent: z.number().nullable(),
  memoryUsedBytes: z.number(),
  memoryTotalBytes: z.number(),
  diskRootUsedBytes: z.number(),
  diskRootTotalBytes: z.number(),
  diskStateUsedBytes: z.number(),
  diskStateTotalBytes: z.number(),
  netRxBytesPerSec: z.number().nullable(),
  netTxBytesPerSec: z.number().nullable(),
  load1: z.number(),
  load5: z.number(),
  load15: z.number(),
});
export type HostMetricsPoint = z.infer<typeof HostMetricsPointSchema>;

export const ContainerMetricsPointSchema = z.object({
  at: IsoDateSchema,
  cpuPercent: z.number().nullable(),
  memoryUsedBytes: z.number(),
  memoryLimitBytes: z.number().nullable(),
});
export type ContainerMetricsPoint = z.infer<typeof ContainerMetricsPointSchema>;

/** Query of the metrics endpoints. Absent `to` is now; absent `from` is one hour before `to`. */
export const MetricsQuerySchema = z
  .strictObject({
    from: IsoDateSchema.optional(),
    to: IsoDateSchema.optional(),
    resolution: z.enum(['auto', 'raw', '1m', '1h']).default('auto'),
    /** Container metrics only: one container's series. */
    containerId: ContainerIdSchema.optional(),
  })
  .refine((q) => !q.from || !q.to || Date.parse(q.from) < Date.parse(q.to), { message: '"from" must be before "to"', path: ['from'] });
export type MetricsQuery = z.input<typeof MetricsQuerySchema>;

/** GET /api/machines/:machineId/metrics */
export const MachineMetricsResponseSchema = z.object({
  machineId: IdSchema,
  resolution: MetricsResolutionSchema,
  from: IsoDateSchema,
  to: IsoDateSchema,
  points: z.array(HostMetricsPointSchema),
});
export type MachineMetricsResponse = z.infer<typeof MachineMetricsResponseSchema>;

/** GET /api/machines/:machineId/metrics/containers */
export const ContainerMetricsResponseSchema = z.object({
  machineId: IdSchema,
  resolution: MetricsResolutionSchema,
  from: IsoDateSchema,
  to: IsoDateSchema,
  series: z.array(z.object({ containerId: ContainerIdSchema, points: z.array(ContainerMetricsPointSchema) })),
});
export type ContainerMetricsResponse = z.infer<typeof ContainerMetricsResponseSchema>;

/** GET /api/projects/:projectId/metrics/cpu: every machine's host CPU, for the machine list's sparklines. */
export const ProjectCpuResponseSchema = z.object({
  resolution: MetricsResolutionSchema,
  from: IsoDateSchema,
  to: IsoDateSchema,
  series: z.array(z.object({ machineId: IdSchema, points: z.array(z.object({ at: IsoDateSchema, cpuPercent: z.number().nullable() })) })),
});
export type ProjectCpuResponse = z.infer<typeof ProjectCpuResponseSchema>;

// ---------------------------------------------------------------- /live

/** dashboard → server `subscribe:machine-metrics` / `unsubscribe:machine-metrics`: watch one machine's metrics (and make its agent sample fast). */
export const SubscribeMachineMetricsSchema = z.strictObject({ machineId: IdSchema });
export type SubscribeMachineMetrics = z.infer<typeof SubscribeMachineMetricsSchema>;

/** server → the machine's metrics watchers, `metrics:sample`: every sample the agent sends, as it arrives. */
export const LiveMetricsSampleEventSchema = z.object({
  projectId: IdSchema,
  machineId: IdSchema,
  host: HostMetricsPointSchema,
  containers: z.array(ContainerMetricsPointSchema.extend({ containerId: ContainerIdSchema })),
});
export type LiveMetricsSampleEvent = z.infer<typeof LiveMetricsSampleEventSchema>;

/** server → the project's room, `metrics:host`: a stored host sample's headline numbers (at most one per raw interval per machine). */
export const LiveHostMetricsEventSchema = z.object({
  projectId: IdSchema,
  machineId: IdSchema,
  at: IsoDateSchema,
  cpuPercent: z.number().nullable(),
  memoryUsedBytes: z.number(),
  memoryTotalBytes: z.number(),
});
export type LiveHostMetricsEvent = z.infer<typeof LiveHostMetricsEventSchema>;
