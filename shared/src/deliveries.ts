import { z } from 'zod';
import { IdSchema, IsoDateSchema, noNul } from './common';
import { TargetsSchema } from './executions';
import { Sha256Schema } from './files';
import { LIMITS } from './limits';

/**
 * The agent's download of a file it was sent: plain HTTP(S) on the server's
 * URL, never the socket (a socket message is capped at 1 MB), with the
 * machine credential as `Authorization: Bearer kpm_…` and one `Range` to
 * resume. The answer carries `ETag: "<sha256>"`; the agent hashes what it
 * received and uses nothing that does not match.
 */
export const AGENT_FILES_PATH = '/api/agent/files';
export const agentFileContentPath = (fileId: string): string => `${AGENT_FILES_PATH}/${encodeURIComponent(fileId)}/content`;

/** What the agent is told about a file to fetch: enough to address its cache and to verify the bytes. */
export const FileRefSchema = z.strictObject({
  fileId: IdSchema,
  sha256: Sha256Schema,
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
});
export type FileRef = z.infer<typeof FileRefSchema>;

// ---------------------------------------------------------------- deploys and distributions (REST)

/** A deploy writes a file to a path on each machine; a distribution loads an image tarball into each machine's Docker engine. */
export const DeliveryKindSchema = z.enum(['deploy', 'distribution']);
export type DeliveryKind = z.infer<typeof DeliveryKindSchema>;

/**
 * One machine's part of a delivery: queued (a row, the machine not reached)
 * → dispatched (pushed to its agent) → downloading → writing (a deploy) or
 * loading (a distribution) → succeeded | failed (with a reason) | expired
 * (the machine stayed offline until the delivery expired) | refused (the
 * agent's client policy refused it, with the reason; nothing was written).
 */
export const DeliveryStatusSchema = z.enum(['queued', 'dispatched', 'downloading', 'writing', 'loading', 'succeeded', 'failed', 'expired', 'refused']);
export type DeliveryStatus = z.infer<typeof DeliveryStatusSchema>;
export const FINAL_DELIVERY_STATUSES: readonly DeliveryStatus[] = ['succeeded', 'failed', 'expired', 'refused'];
export const isFinalDelivery = (s: DeliveryStatus): boolean => FINAL_DELIVERY_STATUSES.includes(s);

export const DELIVERY_LIMITS = {
  pathMax: 1024,
  ownerMax: 65,
  reasonMax: 1000,
} as const;

/** An absolute path without `.` or `..` segments and without NUL: the agent resolves and checks it again against its own policy. */
export const DeployPathSchema = noNul(
  z
    .string()
    .max(DELIVERY_LIMITS.pathMax)
    .startsWith('/', 'an absolute path')
    .refine((p) => !p.endsWith('/'), 'must name a file, not a directory')
    .refine((p) => p.split('/').every((seg) => seg !== '.' && seg !== '..'), 'must not contain "." or ".." segments'),
);

/** File mode as octal digits, "0644" or "644"; set-id and sticky bits are refused. */
export const FileModeSchema = z
  .string()
  .regex(/^0?[0-7]{3}$/, 'octal permission digits such as "0644" (no setuid, setgid or sticky bit)')
  .transform((s) => parseInt(s, 8));

/** `user` or `user:group`, names or numeric ids. */
export const FileOwnerSchema = z
  .string()
  .max(DELIVERY_LIMITS.ownerMax)
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?$/, 'user or user:group (names or numeric ids)');

export const CreateDeployRequestSchema = z.strictObject({
  /** A stored file of kind `file` or `script` of the same project. */
  fileId: IdSchema,
  targets: TargetsSchema,
  path: DeployPathSchema,
  /** Default 0644. */
  mode: FileModeSchema.optional(),
  /** Default: the agent's own user. */
  owner: FileOwnerSchema.optional(),
  /** How long the delivery waits for offline machines; default one day. */
  expiresInSeconds: z.number().int().min(1).max(LIMITS.timeoutSecondsMax).optional(),
});
export type CreateDeployRequest = z.input<typeof CreateDeployRequestSchema>;

export const CreateDistributionRequestSchema = z.strictObject({
  /** A stored file of kind `image` (a `docker save` tarball) of the same project. */
  fileId: IdSchema,
  targets: TargetsSchema,
  expiresInSeconds: z.number().int().min(1).max(LIMITS.timeoutSecondsMax).optional(),
});
export type CreateDistributionRequest = z.input<typeof CreateDistributionRequestSchema>;

export const DeliveryMachineSchema = z.object({
  deliveryId: IdSchema,
  machineId: IdSchema,
  status: DeliveryStatusSchema,
  /** Bytes of the file the agent has (downloaded or found in its cache). */
  receivedBytes: z.number().int().nonnegative(),
  totalBytes: z.number().int().nonnegative(),
  reason: z.string().nullable(),
  /** A distribution's loaded image id (`sha256:…`), as the engine reports it and checked against the tarball's manifest. */
  imageId: z.string().nullable(),
  updatedAt: IsoDateSchema,
  finishedAt: IsoDateSchema.nullable(),
});
export type DeliveryMachine = z.infer<typeof DeliveryMachineSchema>;

export const DeliverySchema = z.object({
  id: IdSchema,
  projectId: IdSchema,
  kind: DeliveryKindSchema,
  file: z.object({ id: IdSchema, name: z.string(), sha256: z.string(), size: z.number().int().nonnegative() }),
  /** Deploys: where, with which mode (a number) and owner; null for distributions. */
  path: z.string().nullable(),
  mode: z.number().int().nullable(),
  owner: z.string().nullable(),
  createdBy: IdSchema.nullable(),
  createdAt: IsoDateSchema,
  expiresAt: IsoDateSchema,
  machines: z.array(DeliveryMachineSchema),
});
export type Delivery = z.infer<typeof DeliverySchema>;

// ---------------------------------------------------------------- on /agent

/** Server → agent: deliver this. At least once; the agent applies each `deliveryId` once. */
export const DeliveryDispatchSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('deploy'),
    deliveryId: IdSchema,
    file: FileRefSchema,
    path: z.string().max(DELIVERY_LIMITS.pathMax),
    mode: z.number().int().min(0).max(0o777),
    owner: z.string().max(DELIVERY_LIMITS.ownerMax).nullable(),
  }),
  z.strictObject({
    kind: z.literal('distribution'),
    deliveryId: IdSchema,
    file: FileRefSchema,
  }),
]);
export type DeliveryDispatch = z.infer<typeof DeliveryDispatchSchema>;

/** Agent → server: where a delivery is now (the latest of several is enough). */
export const DeliveryProgressSchema = z.strictObject({
  deliveryId: IdSchema,
  status: z.enum(['downloading', 'writing', 'loading']),
  receivedBytes: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
});
export type DeliveryProgress = z.infer<typeof DeliveryProgressSchema>;

/** Agent → server: the one result of a delivery on this machine. */
export const DeliveryFinishedSchema = z.strictObject({
  deliveryId: IdSchema,
  /** `refused`: the client policy refused it (reason set); nothing was downloaded, written or loaded. */
  status: z.enum(['succeeded', 'failed', 'refused']),
  reason: z.string().max(DELIVERY_LIMITS.reasonMax).nullable(),
  imageId: z.string().max(200).nullable().optional(),
});
export type DeliveryFinished = z.infer<typeof DeliveryFinishedSchema>;

/** /live: one machine's part of a delivery changed. */
export const LiveDeliveryEventSchema = z.object({ projectId: IdSchema, kind: DeliveryKindSchema, machine: DeliveryMachineSchema });
export type LiveDeliveryEvent = z.infer<typeof LiveDeliveryEventSchema>;
