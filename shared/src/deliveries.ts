import { z } from 'zod';
import { IdSchema, IsoDateSchema, noNul } from './common';
import { TargetsSchema } from './executions';
import { Sha256Schema } from './files';
import { LIMITS } from './limits';
import { formatBytes } from './cli/progress';

/**
 * The agent's download of a file it was sent: plain HTTP(S) on the server's
 * URL, never the socket (a socket message is capped at 1 MB), with the
 * machine credential as `Authorization: Bearer kpm_…` and one `Range` to
 * resume. The answer carries `ETag: "<sha256>"`; the agent hashes what it
 * received and uses nothing that does not match.
 */
export const AGENT_FILES_PATH = '/api/agent/files';
export const agentFileContentPath = (fileId: string): string => `${AGENT_FILES_PATH}/${encodeURIComponent(fileId)}/content`;

/**
 * The layer index of a stored image tarball (see ImageIndexSchema), with the
 * same credential and grant as the content: 404 when the file has none (not
 * what `docker save` writes, or indexed by no distribution yet), and the agent
 * then downloads the whole tarball.
 */
export const agentImageIndexPath = (fileId: string): string => `${AGENT_FILES_PATH}/${encodeURIComponent(fileId)}/image-index`;

/** What the agent is told about a file to fetch: enough to address its cache and to verify the bytes. */
export const FileRefSchema = z.strictObject({
  fileId: IdSchema,
  sha256: Sha256Schema,
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
});
export type FileRef = z.infer<typeof FileRefSchema>;

// ---------------------------------------------------------------- image layer index

export const IMAGE_INDEX_LIMITS = {
  /** Docker itself stops at 127 layers; anything far beyond is not an image. */
  layersMax: 256,
  /** manifest.json and the image config are read whole, by the server and the agent: both are small in every real image. */
  metadataBytesMax: 4 * 1024 * 1024,
  nameMax: 1024,
} as const;

const OffsetSchema = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
/** `sha256:<hex>`, as image ids and layer diffIDs are written. */
export const DigestSchema = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'a digest sha256:<64 hex digits>');
/** Where one member's bytes lie in the tarball, and the name `docker load` looks it up by (a manifest path, never a link). */
const TarSpanSchema = z.strictObject({
  name: noNul(z.string().min(1).max(IMAGE_INDEX_LIMITS.nameMax)),
  offset: OffsetSchema,
  size: OffsetSchema,
});

/**
 * A single-image tarball as `docker save` writes it (manifest.json,
 * `<config hex>.json`, `<id>/layer.tar` uncompressed; or the OCI layout's
 * manifest.json naming `blobs/sha256/…`), indexed by the server: the byte
 * range of manifest.json, of the config and of each layer, in manifest
 * order. Every digest here can be checked by the agent on the bytes it gets:
 * the manifest by `sha256`, the config by its own digest (the image id), each
 * layer by the diffID the config gives it.
 */
export const ImageIndexSchema = z
  .strictObject({
    fileId: IdSchema,
    /** The whole tarball's sha256 and size: the file the spans are ranges of. */
    sha256: Sha256Schema,
    size: OffsetSchema,
    format: z.enum(['docker-save', 'oci']),
    manifest: TarSpanSchema.extend({ sha256: Sha256Schema }),
    config: TarSpanSchema.extend({ digest: DigestSchema }),
    layers: z.array(TarSpanSchema.extend({ diffId: DigestSchema })).max(IMAGE_INDEX_LIMITS.layersMax),
  })
  .superRefine((x, ctx) => {
    const spans = [
      ['manifest', x.manifest],
      ['config', x.config],
      ...x.layers.map((l, i) => [`layers.${i}`, l] as const),
    ] as const;
    for (const [where, s] of spans) {
      if (s.offset + s.size > x.size) ctx.addIssue({ code: 'custom', path: [where], message: `reaches past the end of the ${x.size}-byte tarball` });
    }
    for (const [where, s] of [spans[0], spans[1]]) {
      if (s.size > IMAGE_INDEX_LIMITS.metadataBytesMax) ctx.addIssue({ code: 'custom', path: [where], message: `over ${IMAGE_INDEX_LIMITS.metadataBytesMax} bytes` });
    }
  });
export type ImageIndex = z.infer<typeof ImageIndexSchema>;

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
  /** Bytes that crossed the network for this part, as its agent counted them: 0 from its cache, below `totalBytes` when only missing layers moved; null until reported. */
  movedBytes: z.number().int().nonnegative().nullable(),
  /** A distribution that moved only missing layers: how many of the image's layers the engine already had. Null when the whole tarball moved. */
  layers: z.object({ present: z.number().int().nonnegative(), total: z.number().int().nonnegative() }).nullable(),
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

/** What moved for one delivery on one machine (see DeliveryMachine.movedBytes and .layers). */
export const DeliveryTransferSchema = z.strictObject({
  movedBytes: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  layers: z
    .strictObject({ present: z.number().int().nonnegative().max(IMAGE_INDEX_LIMITS.layersMax), total: z.number().int().nonnegative().max(IMAGE_INDEX_LIMITS.layersMax) })
    .refine((l) => l.present <= l.total, 'more layers present than the image has')
    .nullable(),
});
export type DeliveryTransfer = z.infer<typeof DeliveryTransferSchema>;

/** "moved 12.0 MiB of 210.0 MiB, 3 of 4 layers present", or null before the agent said. */
export function describeTransfer(m: Pick<DeliveryMachine, 'movedBytes' | 'layers' | 'totalBytes'>): string | null {
  if (m.movedBytes === null) return null;
  const moved = `moved ${formatBytes(m.movedBytes)} of ${formatBytes(m.totalBytes)}`;
  return m.layers ? `${moved}, ${m.layers.present} of ${m.layers.total} layers present` : moved;
}

/** Agent → server: where a delivery is now (the latest of several is enough). */
export const DeliveryProgressSchema = z.strictObject({
  deliveryId: IdSchema,
  status: z.enum(['downloading', 'writing', 'loading']),
  receivedBytes: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  /** Once the agent knows what it moves (older agents never send it). */
  transfer: DeliveryTransferSchema.optional(),
});
export type DeliveryProgress = z.infer<typeof DeliveryProgressSchema>;

/** Agent → server: the one result of a delivery on this machine. */
export const DeliveryFinishedSchema = z.strictObject({
  deliveryId: IdSchema,
  /** `refused`: the client policy refused it (reason set); nothing was downloaded, written or loaded. */
  status: z.enum(['succeeded', 'failed', 'refused']),
  reason: z.string().max(DELIVERY_LIMITS.reasonMax).nullable(),
  imageId: z.string().max(200).nullable().optional(),
  transfer: DeliveryTransferSchema.optional(),
});
export type DeliveryFinished = z.infer<typeof DeliveryFinishedSchema>;

/** /live: one machine's part of a delivery changed. */
export const LiveDeliveryEventSchema = z.object({ projectId: IdSchema, kind: DeliveryKindSchema, machine: DeliveryMachineSchema });
export type LiveDeliveryEvent = z.infer<typeof LiveDeliveryEventSchema>;
