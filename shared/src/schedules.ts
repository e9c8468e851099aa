import { Cron } from 'croner';
import { z } from 'zod';
import { IdSchema, IsoDateSchema, noNul } from './common';
import { CreateExecutionRequestSchema, ExecutionStatusSchema } from './executions';
import { LIMITS } from './limits';

export const SCHEDULE_LIMITS = {
  /** Two fires closer than this are refused: a schedule firing every second would be a load generator. */
  minIntervalSeconds: 2,
  /** Occurrences waiting behind a running one (overlap policy "queue"). */
  queueLimitMax: 10,
  /** How far ahead a one-shot may be set. */
  runAtMaxYears: 10,
  cronMax: 255,
  timezoneMax: 64,
  /** Fire times shown with a schedule. */
  previewCount: 5,
  historyPageMax: 500,
} as const;

/** A zone name the runtime's Intl knows (IANA, e.g. Europe/Berlin); the same test on server and dashboard. */
export function isValidTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/**
 * The next `count` fire times of a cron expression in `timezone`, strictly
 * after `after`. Croner resolves DST: a wall time skipped by spring-forward
 * fires at the first instant after the gap, a repeated wall time at fall-back
 * fires once (its first occurrence). Throws on a bad expression or zone.
 */
export function nextCronRuns(cron: string, timezone: string, after: Date, count: number): Date[] {
  return new Cron(cron, { timezone, paused: true, mode: 'auto' }).nextRuns(count, after);
}

/** Why a cron expression is refused, or null when it is usable. */
export function cronProblem(cron: string, timezone: string): string | null {
  let runs: Date[];
  try {
    runs = nextCronRuns(cron, timezone, new Date(), 20);
  } catch (err) {
    return err instanceof Error ? err.message.replace(/^Cron\w*: /, '') : 'not a cron expression';
  }
  if (!runs.length) return 'never fires';
  for (let i = 1; i < runs.length; i++) {
    if (runs[i].getTime() - runs[i - 1].getTime() < SCHEDULE_LIMITS.minIntervalSeconds * 1000) {
      return `fires more often than every ${SCHEDULE_LIMITS.minIntervalSeconds} seconds`;
    }
  }
  return null;
}

export const MissedRunPolicySchema = z.enum([
  'run_once', // occurrences that fell while no server was up: one run when a server comes back
  'skip', // recorded as skipped, not run
]);
export type MissedRunPolicy = z.infer<typeof MissedRunPolicySchema>;

export const OverlapPolicySchema = z.enum([
  'skip', // the previous occurrence still runs: this one is recorded as skipped
  'queue', // waits for the previous one, up to queueLimit waiting
  'replace', // the previous one is cancelled, this one runs
  'allow', // runs alongside
]);
export type OverlapPolicy = z.infer<typeof OverlapPolicySchema>;

/**
 * What a schedule runs: exactly the body of POST /executions (script or
 * file, args, env, cwd, timeout, secrets, targets), taken from that schema
 * so a field added to runs is a field of schedules too.
 */
const runFields = CreateExecutionRequestSchema.shape;
const runFieldNames = Object.keys(runFields) as (keyof typeof runFields)[];

const scheduleFields = {
  name: noNul(z.string().trim().min(1).max(LIMITS.nameMax)),
  cron: noNul(z.string().trim().min(1).max(SCHEDULE_LIMITS.cronMax)),
  timezone: z.string().max(SCHEDULE_LIMITS.timezoneMax).refine(isValidTimeZone, 'not a known IANA time zone (e.g. Europe/Berlin, UTC)'),
  runAt: IsoDateSchema,
  enabled: z.boolean(),
  missedRunPolicy: MissedRunPolicySchema,
  overlapPolicy: OverlapPolicySchema,
  queueLimit: z.number().int().min(1).max(SCHEDULE_LIMITS.queueLimitMax),
};

/** The run spec a schedule stores: the fields of a run request, nothing else. */
export type ScheduleRunSpec = z.infer<typeof CreateExecutionRequestSchema>;

/** The run fields of a schedule body, to store and to hand to the executions feature. */
export function runSpecOf(body: Record<string, unknown>): Record<string, unknown> {
  const spec: Record<string, unknown> = {};
  for (const k of runFieldNames) if (body[k] !== undefined) spec[k] = body[k];
  return spec;
}

type Ctx = z.core.$RefinementCtx;

/** The rules across fields: cron or runAt (not both), a zone only with cron, a usable expression, and the run request's own rules. */
function checkWhole(v: { cron?: string | null; runAt?: string | null; timezone?: string | null } & Record<string, unknown>, ctx: Ctx): void {
  const hasCron = v.cron != null;
  const hasRunAt = v.runAt != null;
  if (hasCron && hasRunAt) ctx.addIssue({ code: 'custom', path: ['runAt'], message: 'give cron or runAt, not both' });
  if (!hasCron && !hasRunAt) ctx.addIssue({ code: 'custom', path: ['cron'], message: 'give cron (repeating) or runAt (once)' });
  if (hasRunAt && v.timezone != null) ctx.addIssue({ code: 'custom', path: ['timezone'], message: 'a time zone goes with cron; runAt carries its own offset' });
  if (hasCron && !hasRunAt && (v.timezone == null || isValidTimeZone(v.timezone))) {
    const problem = cronProblem(v.cron as string, v.timezone ?? 'UTC');
    if (problem) ctx.addIssue({ code: 'custom', path: ['cron'], message: problem });
  }
  // Cross-field rules of the run request (a secret sharing an env name, and whatever it gains later), field paths unchanged.
  const run = CreateExecutionRequestSchema.safeParse(runSpecOf(v));
  if (!run.success) for (const issue of run.error.issues) ctx.addIssue({ code: 'custom', path: issue.path as (string | number)[], message: issue.message });
}

/**
 * POST /api/projects/:projectId/schedules. A flat body (the run's fields
 * beside the schedule's own), as POST /executions is flat. Defaults:
 * timezone UTC, enabled, missedRunPolicy skip, overlapPolicy skip, queueLimit 1.
 */
export const CreateScheduleRequestSchema = z
  .strictObject({
    ...runFields,
    name: scheduleFields.name,
    cron: scheduleFields.cron.optional(),
    timezone: scheduleFields.timezone.optional(),
    runAt: scheduleFields.runAt.optional(),
    enabled: scheduleFields.enabled.optional(),
    missedRunPolicy: scheduleFields.missedRunPolicy.optional(),
    overlapPolicy: scheduleFields.overlapPolicy.optional(),
    queueLimit: scheduleFields.queueLimit.optional(),
  })
  .superRefine(checkWhole);
export type CreateScheduleRequest = z.infer<typeof CreateScheduleRequestSchema>;

/**
 * PATCH /api/schedules/:id: any field; null clears cron, runAt or timezone
 * (to switch between repeating and once). The merged result must be a valid
 * schedule; the server checks it with CreateScheduleRequestSchema.
 */
export const UpdateScheduleRequestSchema = z
  .strictObject({
    ...Object.fromEntries(runFieldNames.map((k) => [k, runFields[k].optional()])),
    name: scheduleFields.name.optional(),
    cron: scheduleFields.cron.nullable().optional(),
    timezone: scheduleFields.timezone.nullable().optional(),
    runAt: scheduleFields.runAt.nullable().optional(),
    enabled: scheduleFields.enabled.optional(),
    missedRunPolicy: scheduleFields.missedRunPolicy.optional(),
    overlapPolicy: scheduleFields.overlapPolicy.optional(),
    queueLimit: scheduleFields.queueLimit.optional(),
  })
  .refine((v) => Object.keys(v).length > 0, 'nothing to change');
export type UpdateScheduleRequest = Partial<Omit<CreateScheduleRequest, 'cron' | 'timezone' | 'runAt'>> & {
  cron?: string | null;
  timezone?: string | null;
  runAt?: string | null;
};

export const OccurrenceStatusSchema = z.enum([
  'queued', // waits for the previous occurrence (overlap policy queue)
  'firing', // claimed by a node, its executions being created
  'running', // executions created, not all final
  'succeeded', // every execution succeeded
  'failed', // at least one execution failed, timed out, was lost, cancelled or expired
  'skipped', // not run; reason says why
]);
export type OccurrenceStatus = z.infer<typeof OccurrenceStatusSchema>;
export const FINAL_OCCURRENCE_STATUSES: readonly OccurrenceStatus[] = ['succeeded', 'failed', 'skipped'];

export const OccurrenceSchema = z.object({
  id: IdSchema,
  scheduleId: IdSchema,
  /** The slot the schedule computed (not when a node got to it). */
  fireAt: IsoDateSchema,
  status: OccurrenceStatusSchema,
  reason: z.string().nullable(),
  /** The run of its executions (GET /api/projects/:projectId/executions?runId=…). */
  runId: IdSchema.nullable(),
  firedAt: IsoDateSchema.nullable(),
  finishedAt: IsoDateSchema.nullable(),
  executions: z.array(z.object({ id: IdSchema, machineId: IdSchema, status: ExecutionStatusSchema })),
});
export type Occurrence = z.infer<typeof OccurrenceSchema>;

export const OccurrenceSummarySchema = OccurrenceSchema.omit({ executions: true });
export type OccurrenceSummary = z.infer<typeof OccurrenceSummarySchema>;

export const ScheduleSchema = z.object({
  id: IdSchema,
  projectId: IdSchema,
  name: z.string(),
  cron: z.string().nullable(),
  timezone: z.string(),
  runAt: IsoDateSchema.nullable(),
  enabled: z.boolean(),
  missedRunPolicy: MissedRunPolicySchema,
  overlapPolicy: OverlapPolicySchema,
  queueLimit: z.number().int(),
  /** The run each occurrence starts; secrets by name only. */
  run: z.record(z.string(), z.unknown()),
  /** The next slot this schedule fires at; null when paused or a one-shot that has fired. */
  nextRunAt: IsoDateSchema.nullable(),
  /** The next fire times (up to five) from now, in UTC; the dashboard shows them in both zones. */
  nextRuns: z.array(IsoDateSchema),
  lastOccurrence: OccurrenceSummarySchema.nullable(),
  createdBy: IdSchema.nullable(),
  createdAt: IsoDateSchema,
  updatedAt: IsoDateSchema,
});
export type Schedule = Omit<z.infer<typeof ScheduleSchema>, 'run'> & { run: ScheduleRunSpec };

export const ListOccurrencesQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(SCHEDULE_LIMITS.historyPageMax).optional(),
  /** Occurrences with a fire time before this (paging back). */
  before: IsoDateSchema.optional(),
});
export type ListOccurrencesQuery = z.infer<typeof ListOccurrencesQuerySchema>;
