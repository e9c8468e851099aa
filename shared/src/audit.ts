import { z } from 'zod';
import { IdSchema, IsoDateSchema } from './common';

/**
 * Every state-changing action the server records in its audit log. A name is
 * `<area>.<verb>`; the list is closed so a filter or a dashboard can offer
 * every value and a typo in a recorder fails to compile.
 */
export const AUDIT_ACTIONS = [
  'auth.login',
  'auth.login_failed',
  'auth.logout',
  'auth.signup',
  'instance.settings_update',
  'invitation.create',
  'invitation.revoke',
  'api_token.create',
  'api_token.revoke',
  'enrolment_token.create',
  'enrolment_token.revoke',
  'project.create',
  'project.update',
  'project.delete',
  'member.add',
  'member.update',
  'member.remove',
  'run.create',
  'run.cancel',
  'deploy.create',
  'distribution.create',
  'container.create',
  'container.action',
  'schedule.create',
  'schedule.update',
  'schedule.delete',
  'schedule.pause',
  'schedule.resume',
  /** An occurrence started its run: no request, on behalf of the schedule's creator. */
  'schedule.fire',
  'secret.create',
  'secret.update',
  'secret.delete',
  'file.upload',
  'file.delete',
  'machine.enrol',
  'machine.update',
  'machine.revoke',
] as const;
export const AuditActionSchema = z.enum(AUDIT_ACTIONS);
export type AuditAction = z.infer<typeof AuditActionSchema>;

/** Who acted: a browser session's user, an API token (and its user), an agent's machine, or nobody yet (a refused log-in). */
export const AuditActorTypeSchema = z.enum(['user', 'api_token', 'machine', 'anonymous']);
export type AuditActorType = z.infer<typeof AuditActorTypeSchema>;

export const AUDIT_DETAILS_MAX_BYTES = 4096;

const DetailValueSchema = z.union([z.string().max(500), z.number(), z.boolean(), z.null(), z.array(z.string().max(200)).max(100)]);
/**
 * The "what" beyond the action name: ids, names, counts, never a secret's
 * value or a request body copied whole. Flat and small, so a row stays a row.
 */
export const AuditDetailsSchema = z
  .record(z.string().min(1).max(64), DetailValueSchema)
  .refine((d) => new TextEncoder().encode(JSON.stringify(d)).length <= AUDIT_DETAILS_MAX_BYTES, `details must be at most ${AUDIT_DETAILS_MAX_BYTES} bytes of JSON`);
export type AuditDetails = z.infer<typeof AuditDetailsSchema>;

export const AuditEventSchema = z.object({
  /** Insertion order across every server node (the database assigns it); also the pagination cursor. */
  id: z.string(),
  at: IsoDateSchema,
  action: AuditActionSchema,
  actor: z.object({
    type: AuditActorTypeSchema,
    userId: IdSchema.nullable(),
    email: z.string().nullable(),
    tokenId: IdSchema.nullable(),
    tokenName: z.string().nullable(),
    machineId: IdSchema.nullable(),
  }),
  projectId: IdSchema.nullable(),
  machineId: IdSchema.nullable(),
  /** The client address as the server's TRUST_PROXY setting resolves it; null when there was no request. */
  address: z.string().nullable(),
  requestId: z.string().nullable(),
  details: AuditDetailsSchema,
});
export type AuditEvent = z.infer<typeof AuditEventSchema>;

/** Filters shared by the list and the export. */
export const AuditFilterSchema = z.strictObject({
  action: AuditActionSchema.optional(),
  /** A user, API token or machine id: events that actor performed. */
  actor: IdSchema.optional(),
  /** Events about this machine (its enrolment, its runs, its containers…). */
  machine: IdSchema.optional(),
  /** Inclusive lower and exclusive upper bound on `at`. */
  from: IsoDateSchema.optional(),
  to: IsoDateSchema.optional(),
});
export type AuditFilter = z.infer<typeof AuditFilterSchema>;

export const AUDIT_PAGE_MAX = 200;
export const AuditQuerySchema = AuditFilterSchema.extend({
  /** The `nextCursor` of the previous page: events older than it. */
  cursor: z.string().regex(/^[1-9][0-9]{0,17}$/, 'must be a cursor from a previous page').optional(),
  limit: z.coerce.number().int().min(1).max(AUDIT_PAGE_MAX).optional(),
});
export type AuditQuery = z.infer<typeof AuditQuerySchema>;

/** Newest first; `nextCursor` is null on the last page. */
export const AuditPageSchema = z.object({ events: z.array(AuditEventSchema), nextCursor: z.string().nullable() });
export type AuditPage = z.infer<typeof AuditPageSchema>;
