import { createParamDecorator, ExecutionContext, SetMetadata } from '@nestjs/common';
import type { ProjectRole } from '@kapitan/shared';

/** Who is calling: resolved from a valid, unrevoked session or API token. */
export interface AuthUser {
  userId: string;
  /** The browser session; empty for an API token (which has none to end). */
  sessionId: string;
  /** Always false for an API token: instance administration needs a session. */
  isAdmin: boolean;
  /** The user's address as read when this request was authenticated (what the audit log records). */
  email: string;
  /** Set when the caller authenticated with an API token: it acts only in this project, at most with this role. */
  apiToken?: { id: string; name: string; userId: string; projectId: string; role: ProjectRole };
}

export const IS_PUBLIC = 'kapitan:public';
/** Opt a route out of the global JWT guard. */
export const Public = () => SetMetadata(IS_PUBLIC, true);

export const SESSION_ONLY = 'kapitan:session-only';
/**
 * Refuse API tokens here (403). For routes that manage credentials or
 * membership: a token that could mint tokens, add members or create projects
 * would let whoever holds it outlive its revocation, its expiry and its
 * project scope (privilege persistence).
 */
export const SessionOnly = () => SetMetadata(SESSION_ONLY, true);

export const CurrentUser = createParamDecorator((_: unknown, ctx: ExecutionContext): AuthUser => {
  return ctx.switchToHttp().getRequest<{ user: AuthUser }>().user;
});
