/**
 * Containers of a machine's Docker engine as the agent reports them, the
 * operations the server sends back (start, stop, restart, remove, create),
 * and container log lines. REST bodies and socket payloads alike.
 */
import { z } from 'zod';
import { IdSchema, IsoDateSchema, noNul } from './common';
import { LIMITS } from './limits';

export const CONTAINER_LIMITS = {
  /** Containers in one `containers:snapshot` message; a larger engine is sent in parts. */
  snapshotPartMax: 200,
  /** Containers (changed plus removed) in one `containers:changed` message. */
  changesMax: 100,
  /** Docker labels reported per container; the agent keeps the first ones. */
  dockerLabelsMax: 64,
  dockerLabelKeyMax: 255,
  dockerLabelValueMax: 1024,
  portsMax: 64,
  nameMax: 128,
  imageMax: 255,
  statusMax: 255,
  errorMax: 2000,
  volumesMax: 32,
  pathMax: 1024,
  /** Bounded wait of create-and-start for running (and healthy). */
  waitSecondsMax: 600,
  waitSecondsDefault: 60,
  /** Lines a log subscription may ask for before following. */
  logTailMax: 100_000,
  /** Lines in one `container:logs` message. */
  logLinesPerMessageMax: 500,
  logLineMax: 16 * 1024,
} as const;

/** A full Docker container id: 64 lower-case hex digits (what the engine reports and the API takes). */
export const ContainerIdSchema = z
  .string()
  .toLowerCase()
  .regex(/^[0-9a-f]{64}$/, 'a container id is 64 hexadecimal digits');

export const ContainerStateSchema = z.enum(['created', 'running', 'paused', 'restarting', 'removing', 'exited', 'dead']);
export type ContainerState = z.infer<typeof ContainerStateSchema>;
export const ContainerHealthSchema = z.enum(['none', 'starting', 'healthy', 'unhealthy']);
export type ContainerHealth = z.infer<typeof ContainerHealthSchema>;

export const ContainerPortSchema = z.strictObject({
  privatePort: z.number().int().min(0).max(65535),
  publicPort: z.number().int().min(0).max(65535).nullable(),
  protocol: z.enum(['tcp', 'udp', 'sctp']),
  ip: z.string().max(64).nullable(),
});
export type ContainerPort = z.infer<typeof ContainerPortSchema>;

export const DockerLabelsSchema = z
  .record(noNul(z.string().min(1).max(CONTAINER_LIMITS.dockerLabelKeyMax)), noNul(z.string().max(CONTAINER_LIMITS.dockerLabelValueMax)))
  .refine((l) => Object.keys(l).length <= CONTAINER_LIMITS.dockerLabelsMax, `at most ${CONTAINER_LIMITS.dockerLabelsMax} labels`);

/** One container, as the agent reads it from `docker inspect`. */
export const ContainerSchema = z.strictObject({
  id: ContainerIdSchema,
  name: noNul(z.string().max(CONTAINER_LIMITS.nameMax)),
  image: noNul(z.string().max(CONTAINER_LIMITS.imageMax)),
  imageId: z.string().max(100).nullable(),
  state: ContainerStateSchema,
  /** Docker's own words: "Up 3 minutes (healthy)", "Exited (0) 2 seconds ago". */
  status: noNul(z.string().max(CONTAINER_LIMITS.statusMax)),
  health: ContainerHealthSchema,
  ports: z.array(ContainerPortSchema).max(CONTAINER_LIMITS.portsMax),
  labels: DockerLabelsSchema,
  createdAt: IsoDateSchema,
  startedAt: IsoDateSchema.nullable(),
  finishedAt: IsoDateSchema.nullable(),
  exitCode: z.number().int().nullable(),
  restartCount: z.number().int().min(0),
});
export type Container = z.infer<typeof ContainerSchema>;

/** A container as the API lists it: what the agent reported, on which machine, when. */
export const MachineContainerSchema = ContainerSchema.extend({ machineId: IdSchema, updatedAt: IsoDateSchema });
export type MachineContainer = z.infer<typeof MachineContainerSchema>;

/** Whether the agent reaches its Docker engine; the dashboard shows the reason when it does not. */
export const DockerStatusSchema = z.strictObject({
  available: z.boolean(),
  reason: noNul(z.string().max(CONTAINER_LIMITS.errorMax)).nullable(),
  engineVersion: z.string().max(64).nullable(),
});
export type DockerStatus = z.infer<typeof DockerStatusSchema>;
export const MachineDockerStatusSchema = DockerStatusSchema.extend({ machineId: IdSchema, updatedAt: IsoDateSchema.nullable() });
export type MachineDockerStatus = z.infer<typeof MachineDockerStatusSchema>;

// ---------------------------------------------------------------- operations

export const ContainerActionSchema = z.enum(['start', 'stop', 'restart', 'remove']);
export type ContainerAction = z.infer<typeof ContainerActionSchema>;
export const ContainerOperationKindSchema = z.enum(['start', 'stop', 'restart', 'remove', 'create']);
export type ContainerOperationKind = z.infer<typeof ContainerOperationKindSchema>;

const EnvNameSchema = z.string().min(1).max(255).regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'environment names are letters, digits and "_", not starting with a digit');
const AbsolutePathSchema = noNul(z.string().min(1).max(CONTAINER_LIMITS.pathMax)).refine((p) => p.startsWith('/'), 'must be an absolute path');

export const ContainerPortMappingSchema = z.strictObject({
  containerPort: z.number().int().min(1).max(65535),
  hostPort: z.number().int().min(1).max(65535).optional(),
  protocol: z.enum(['tcp', 'udp']).default('tcp'),
  hostIp: z.ipv4().optional(),
});
export const ContainerVolumeSchema = z.strictObject({
  /** A host path (absolute) or a named volume. */
  source: noNul(z.string().min(1).max(CONTAINER_LIMITS.pathMax)).refine(
    (s) => s.startsWith('/') || /^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(s),
    'a volume source is an absolute host path or a volume name',
  ),
  target: AbsolutePathSchema,
  readOnly: z.boolean().optional(),
});
export const RestartPolicySchema = z.enum(['no', 'always', 'unless-stopped', 'on-failure']);

/** POST /api/machines/:machineId/containers: create a container from an image on the machine, start it, wait until it runs. */
export const CreateContainerRequestSchema = z.strictObject({
  image: noNul(z.string().min(1).max(CONTAINER_LIMITS.imageMax)).refine((s) => !/\s/.test(s), 'an image reference has no spaces'),
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'a container name is letters, digits, "_", "." and "-", starting with a letter or digit')
    .optional(),
  env: z
    .record(EnvNameSchema, noNul(z.string().max(LIMITS.envValueMax)))
    .refine((e) => Object.keys(e).length <= LIMITS.envMax, `at most ${LIMITS.envMax} variables`)
    .optional(),
  ports: z.array(ContainerPortMappingSchema).max(CONTAINER_LIMITS.portsMax).optional(),
  volumes: z.array(ContainerVolumeSchema).max(CONTAINER_LIMITS.volumesMax).optional(),
  restartPolicy: RestartPolicySchema.optional(),
  /** argv, never a shell line. */
  command: z.array(noNul(z.string().max(LIMITS.argMax))).max(LIMITS.argsMax).optional(),
  labels: DockerLabelsSchema.optional(),
  /** How long to wait for the container to run (and be healthy, when it has a healthcheck) before the operation fails. */
  waitSeconds: z.number().int().min(1).max(CONTAINER_LIMITS.waitSecondsMax).optional(),
});
export type CreateContainerRequest = z.infer<typeof CreateContainerRequestSchema>;
export type CreateContainerRequestInput = z.input<typeof CreateContainerRequestSchema>;

/** `refused`: the agent's client policy refused it; `error` holds the reason. */
export const ContainerOperationStatusSchema = z.enum(['queued', 'running', 'succeeded', 'failed', 'refused']);
export type ContainerOperationStatus = z.infer<typeof ContainerOperationStatusSchema>;

export const ContainerOperationSchema = z.object({
  id: IdSchema,
  projectId: IdSchema,
  machineId: IdSchema,
  kind: ContainerOperationKindSchema,
  /** The container acted on; for `create`, the one created (once known). */
  containerId: ContainerIdSchema.nullable(),
  status: ContainerOperationStatusSchema,
  /** Docker's error text (or why the wait ended) when it failed. */
  error: z.string().nullable(),
  spec: CreateContainerRequestSchema.nullable(),
  createdBy: IdSchema.nullable(),
  createdAt: IsoDateSchema,
  startedAt: IsoDateSchema.nullable(),
  finishedAt: IsoDateSchema.nullable(),
  expiresAt: IsoDateSchema,
});
export type ContainerOperation = z.infer<typeof ContainerOperationSchema>;

export const ListContainerOperationsQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(200).optional(),
});

// ---------------------------------------------------------------- logs

export const ContainerLogLineSchema = z.strictObject({
  stream: z.enum(['stdout', 'stderr']),
  /** One line, without its newline; longer lines are cut at logLineMax. */
  data: z.string().max(CONTAINER_LIMITS.logLineMax),
});
export type ContainerLogLine = z.infer<typeof ContainerLogLineSchema>;
