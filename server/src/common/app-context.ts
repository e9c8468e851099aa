import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * Runs `fn` in the async context the app started in: no request's principal
 * slot (request-principal.ts), no request id on its log lines. A timer or a
 * promise chain keeps the context of whoever armed it, so work one caller
 * sets off for everyone (a batch of one event-loop turn, a job's timer
 * re-armed from a request) would otherwise act, and be logged, as that
 * caller: a schedule changed with an API token once made the firing job
 * check every later schedule's creator against that token's project.
 *
 * Taken when this module is first imported, at start-up, before any request.
 */
export const inAppContext: <R>(fn: () => R) => R = AsyncLocalStorage.snapshot();
