import { HttpErrorResponse, type HttpInterceptorFn } from '@angular/common/http';
import { inject } from '@angular/core';
import { catchError, throwError } from 'rxjs';
import { AuthService } from './auth.service';

const PUBLIC_AUTH = /^\/api\/auth\/(login|signup)$/;

/** Adds `Authorization: Bearer <token>` to API calls; a 401 ends the session. */
export const authInterceptor: HttpInterceptorFn = (req, next) => {
  const auth = inject(AuthService);
  const isApi = req.url.startsWith('/api/');
  const token = auth.token();
  const outgoing = isApi && token ? req.clone({ setHeaders: { Authorization: `Bearer ${token}` } }) : req;
  return next(outgoing).pipe(
    catchError((err: unknown) => {
      // A wrong password is a 401 too, but it is the form's business, not an expired session.
      if (isApi && err instanceof HttpErrorResponse && err.status === 401 && !PUBLIC_AUTH.test(req.url)) {
        auth.expire();
      }
      return throwError(() => err);
    }),
  );
};
