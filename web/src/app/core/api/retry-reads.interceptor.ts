import { HttpErrorResponse, type HttpInterceptorFn } from '@angular/common/http';
import { retry, throwError, timer } from 'rxjs';

/** Statuses a balancer answers while a node stops or starts (nothing was done on a read). */
const GATEWAY = new Set([502, 503, 504]);
export const READ_RETRIES = 3;
export const READ_RETRY_DELAY_MS = 250;

/**
 * A read of the API answered 502/503/504 (a rolling restart behind a
 * balancer: the request met a node on its way out) is sent again, a few
 * times with a growing pause, before the page shows the error. Only GET
 * and HEAD: a write is never sent twice.
 */
export const retryReadsInterceptor: HttpInterceptorFn = (req, next) => {
  if (!req.url.startsWith('/api/') || (req.method !== 'GET' && req.method !== 'HEAD')) return next(req);
  return next(req).pipe(
    retry({
      count: READ_RETRIES,
      delay: (err: unknown, attempt) =>
        err instanceof HttpErrorResponse && GATEWAY.has(err.status) ? timer(READ_RETRY_DELAY_MS * attempt) : throwError(() => err),
    }),
  );
};
