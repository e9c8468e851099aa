import { z } from 'zod';
import { IdSchema, IsoDateSchema, LabelsSchema, noNul } from './common';
import { LIMITS } from './limits';
import { SecretNameSchema, SecretReferencesSchema } from './secrets';

export const ExecutionStatusSchema = z.enum([
  'queued', // a row, not yet handed to the agent
  'dispatched', // pushed to the agent, not yet started
  'running',
  'succeeded',
  'failed',
  'cancelled',
  'timed_out',
  'lost', // the agent lost the process (restart, crash) or never came back
  'expired', // the machine stayed offline until the work expired
  'refused', // the agent's client policy refused it; nothing ran (reason says which rule)
]);
export type ExecutionStatus = z.infer<typeof ExecutionStatusSchema>;
export const FINAL_EXECUTION_STATUSES: readonly ExecutionStatus[] = [
  'succeeded',
  'failed',
  'cancelled',
  'timed_out',
  'lost',
  'expired',
  'refused',
];
export const isFinalStatus = (s: ExecutionStatus): boolean => FINAL_EXECUTION_STATUSES.includes(s);

const encoder = new TextEncoder();
const utf8Length = (s: string): number => encoder.encode(s).length;

const EnvKeySchema = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'environment names are letters, digits and _');

export const TargetsSchema = z
  .strictObject({
    machineIds: z.array(IdSchema).min(1).max(LIMITS.targetMachineIdsMax).optional(),
    labels: LabelsSchema.optional(),
    all: z.literal(true).optional(),
  })
  .refine((t) => t.machineIds !== undefined || t.labels !== undefined || t.all === true, {
    message: 'name machineIds, labels or all: true',
  });
export type Targets = z.infer<typeof TargetsSchema>;

/** A script's text, bounded in UTF-8 bytes (what the agent writes to disk), not in characters. */
export const ScriptSchema = z
  .string()
  .min(1)
  .refine((s) => utf8Length(s) <= LIMITS.scriptMaxBytes, `at most ${LIMITS.scriptMaxBytes} bytes`);

/**
 * The fields of "run this on those machines", as a plain shape so other
 * requests that start runs (schedules) compose it: spread it into their own
 * `z.strictObject({...})` and apply `checkExecutionWork` in their
 * `superRefine`.
 */
export const ExecutionWorkFields = {
  /** The script inline; or `fileId`, exactly one of the two. */
  script: ScriptSchema.optional(),
  /** A stored file of kind `script` of the same project; its content is copied into the run when it is created. */
  fileId: IdSchema.optional(),
  args: z.array(noNul(z.string().max(LIMITS.argMax))).max(LIMITS.argsMax).optional(),
  env: z
    .record(EnvKeySchema, noNul(z.string().max(LIMITS.envValueMax)))
    .refine((e) => Object.keys(e).length <= LIMITS.envMax, `at most ${LIMITS.envMax} variables`)
    .optional(),
  cwd: noNul(z.string().startsWith('/', 'an absolute path').max(LIMITS.cwdMax)).optional(),
  timeoutSeconds: z.number().int().min(1).max(LIMITS.timeoutSecondsMax).optional(),
  /** How long queued work waits for an offline machine; default one day. */
  expiresInSeconds: z.number().int().min(1).max(LIMITS.timeoutSecondsMax).optional(),
  targets: TargetsSchema,
  /**
   * Project secrets by name: each is injected as the environment variable
   * of that name and masked in the output. Only the names are stored with
   * the execution; the values travel in each dispatch.
   */
  secrets: SecretReferencesSchema.optional(),
};

/** The rules across fields of `ExecutionWorkFields`: one script source, and no name both a secret and an env variable. */
export function checkExecutionWork(req: { script?: string; fileId?: string; env?: Record<string, string>; secrets?: string[] }, ctx: z.RefinementCtx): void {
  if ((req.script === undefined) === (req.fileId === undefined)) {
    const message = req.script === undefined ? 'give script or fileId' : 'give script or fileId, not both';
    ctx.addIssue({ code: 'custom', path: [req.script === undefined ? 'script' : 'fileId'], message });
  }
  // One variable, two values: which one the script saw would depend on merge order.
  const env = req.env ?? {};
  for (const name of req.secrets ?? []) {
    if (Object.hasOwn(env, name)) ctx.addIssue({ code: 'custom', path: ['secrets'], message: `${name} is also set in env; a secret and an env variable cannot share a name` });
  }
}

export const CreateExecutionRequestSchema = z.strictObject(ExecutionWorkFields).superRefine(checkExecutionWork);
export type CreateExecutionRequest = z.infer<typeof CreateExecutionRequestSchema>;

export const ExecutionSummarySchema = z.object({
  id: IdSchema,
  runId: IdSchema,
  projectId: IdSchema,
  machineId: IdSchema,
  status: ExecutionStatusSchema,
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  /** Why it ended as it did, when the exit code does not say (lost, expired, cancelled by whom). */
  reason: z.string().nullable(),
  createdAt: IsoDateSchema,
  dispatchedAt: IsoDateSchema.nullable(),
  startedAt: IsoDateSchema.nullable(),
  finishedAt: IsoDateSchema.nullable(),
  durationMs: z.number().int().nullable(),
});
export type ExecutionSummary = z.infer<typeof ExecutionSummarySchema>;

export const ExecutionSchema = ExecutionSummarySchema.extend({
  script: z.string(),
  args: z.array(z.string()),
  env: z.record(z.string(), z.string()),
  /** Names of the project secrets injected into the run; their values are never shown. */
  secrets: z.array(SecretNameSchema),
  /** The stored script file the run was made from (its content copied at creation), or null for an inline script. */
  fileId: IdSchema.nullable(),
  /** sha256 of the script as it was copied from that file: later changes to the file do not change the run. */
  fileSha256: z.string().nullable(),
  cwd: z.string().nullable(),
  timeoutSeconds: z.number().int(),
  expiresAt: IsoDateSchema,
  createdBy: IdSchema.nullable(),
  /** Highest sequence number the agent said it wrote; null until it finished. */
  lastSeq: z.number().int().nullable(),
});
export type Execution = z.infer<typeof ExecutionSchema>;

export const CreateExecutionResponseSchema = z.object({
  runId: IdSchema,
  executions: z.array(z.object({ id: IdSchema, machineId: IdSchema, status: ExecutionStatusSchema })),
});
export type CreateExecutionResponse = z.infer<typeof CreateExecutionResponseSchema>;

export const OutputStreamSchema = z.enum(['stdout', 'stderr']);
export type OutputStream = z.infer<typeof OutputStreamSchema>;

/** Output travels and is stored in chunks numbered per execution from 0. */
export const OutputChunkSchema = z.strictObject({
  seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  stream: OutputStreamSchema,
  data: z.string().max(LIMITS.chunkDataMax),
});
export type OutputChunk = z.infer<typeof OutputChunkSchema>;

/** GET /api/executions/:id/log (JSON). Gaps are listed, never closed silently. */
export const ExecutionLogSchema = z.object({
  executionId: IdSchema,
  chunks: z.array(OutputChunkSchema),
  gaps: z.array(z.object({ fromSeq: z.number().int(), toSeq: z.number().int() })),
  /** True when the execution is final and every chunk up to lastSeq is stored. */
  complete: z.boolean(),
  nextSeq: z.number().int(),
});
export type ExecutionLog = z.infer<typeof ExecutionLogSchema>;

export const ExecutionLogQuerySchema = z.strictObject({
  fromSeq: z.coerce.number().int().min(0).optional(),
  limit: z.coerce.number().int().min(1).max(LIMITS.logPageMax).optional(),
});
export type ExecutionLogQuery = z.infer<typeof ExecutionLogQuerySchema>;

export const ListExecutionsQuerySchema = z.strictObject({
  machineId: IdSchema.optional(),
  runId: IdSchema.optional(),
  status: ExecutionStatusSchema.optional(),
  limit: z.coerce.number().int().min(1).max(500).optional(),
});
export type ListExecutionsQuery = z.infer<typeof ListExecutionsQuerySchema>;
