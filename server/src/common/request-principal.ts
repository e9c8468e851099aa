import { AsyncLocalStorage } from 'node:async_hooks';
import type { NextFunction, Request, Response } from 'express';
import type { AuthUser } from '../auth/auth-user';

/**
 * Who is calling, for code deep below the controller that was handed only a
 * `userId`. ProjectsService.requireRole reads it to narrow an API token to its
 * project and role without every feature's service signature changing.
 *
 * The middleware opens an empty slot per request; the global guard fills it
 * once it has authenticated the caller. A mutable slot is needed because the
 * guard runs in a later async step whose context does not flow back out.
 * Outside a request (socket handlers, timers) there is no slot: callers are
 * then treated as sessions, which is what they are (the /live handshake takes
 * only JWTs).
 */
const storage = new AsyncLocalStorage<RequestSlot>();

export interface RequestSlot {
  principal?: AuthUser;
  /**
   * The first project whose role check passed in this request (or that it
   * otherwise acted in, e.g. revoking one's own API token). Routes named
   * by a child's id (`/schedules/:id`) learn their project only inside the
   * service; the audit log reads it from here instead of every service
   * returning it.
   */
  projectId?: string;
}

export function requestPrincipalMiddleware(_req: Request, _res: Response, next: NextFunction): void {
  storage.run({}, next);
}

export function setRequestPrincipal(principal: AuthUser): void {
  const slot = storage.getStore();
  if (slot) slot.principal = principal;
}

/** Called by ProjectsService once a role check passed, and by services that act in a project without one. */
export function noteRequestProject(projectId: string): void {
  const slot = storage.getStore();
  if (slot && !slot.projectId) slot.projectId = projectId;
}

/** The current request's slot itself (read later, once the handler has run). */
export function currentRequestSlot(): RequestSlot | undefined {
  return storage.getStore();
}

/** The API token the current request authenticated with, if any. */
export function currentApiToken(): AuthUser['apiToken'] {
  return storage.getStore()?.principal?.apiToken;
}

/**
 * Runs `fn` outside any request's slot. Domain-event listeners use it: they
 * act for the system, not for whoever published, so an API token's narrowing
 * must not follow its request into them.
 */
export function outsideRequest<T>(fn: () => T): T {
  return storage.exit(fn);
}
