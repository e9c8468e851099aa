import { SetMetadata } from '@nestjs/common';
import type { AuditAction, AuditDetails } from '@kapitan/shared';

export const AUDIT_SPEC = 'kapitan:audit';

/** What the handler saw, for a route's audit spec to pick its details from. */
export interface AuditContext<R = unknown> {
  params: Record<string, string>;
  body: Record<string, unknown>;
  query: Record<string, unknown>;
  /** The handler's answer; undefined for a failure. */
  result: R;
}

export interface AuditSpec<R = unknown> {
  action: AuditAction;
  /**
   * The details to keep. Pick fields by name (ids, names, counts): never
   * pass a body on whole, which is how a secret's value would end up in the log.
   */
  details?: (c: AuditContext<R>) => AuditDetails;
  /** Default: `:projectId` in the path, else the project whose role check passed, else `result.projectId`. */
  projectId?: (c: AuditContext<R>) => string | null | undefined;
  /** Default: `:machineId` in the path, else `result.machineId`. */
  machineId?: (c: AuditContext<R>) => string | null | undefined;
  /** Public routes say who acted once the handler knows (log-in, sign-up, enrolment). */
  actor?: (c: AuditContext<R>) => { userId: string } | { machineId: string };
  /** Refusals recorded as their own action (only log-in: a refused log-in is the event). */
  failure?: { action: AuditAction; when: (err: unknown) => boolean; details: (c: AuditContext<undefined>, err: unknown) => AuditDetails };
}

/**
 * Record this route in the audit log once it has succeeded: who (the
 * request's principal), from where (the address as TRUST_PROXY resolves it),
 * which project (the path's, or the one its role check passed), and `spec`'s
 * details. A request refused for any reason (bad input, no permission, a
 * conflict) changes nothing and records nothing, except as `failure` says.
 */
export function Audit<R = unknown>(action: AuditAction, spec: Omit<AuditSpec<R>, 'action'> = {}): MethodDecorator {
  return SetMetadata(AUDIT_SPEC, { action, ...spec });
}

/**
 * A state-changing route that is deliberately not an audit event, with the
 * reason. Every POST/PUT/PATCH/DELETE route carries one or the other (a spec
 * walks the routes to check), so a new route cannot silently go unrecorded.
 */
export function NotAudited(reason: string): MethodDecorator {
  return SetMetadata(AUDIT_SPEC, { skip: reason });
}

/** A body field as a string for the details, or null: for names and ids the caller sent, never for values. */
export function bodyString(c: AuditContext, field: string): string | null {
  const v = c.body[field];
  return typeof v === 'string' ? v.slice(0, 500) : null;
}
