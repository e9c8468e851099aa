import { HttpErrorResponse } from '@angular/common/http';
import type { AbstractControl } from '@angular/forms';
import { ErrorBodySchema, ErrorCode, type ErrorBody } from '@kapitan/shared';

export type ErrorDetail = NonNullable<ErrorBody['details']>[number];

/**
 * Every failed API call, in the server's one error shape
 * (`{statusCode, code, message, details?, requestId?}`), whatever actually came back.
 */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly details: readonly ErrorDetail[] = [],
    readonly requestId?: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  static from(err: unknown): ApiError {
    if (err instanceof ApiError) return err;
    if (err instanceof HttpErrorResponse) {
      const parsed = ErrorBodySchema.safeParse(typeof err.error === 'string' ? tryJson(err.error) : err.error);
      if (parsed.success) {
        const b = parsed.data;
        return new ApiError(b.statusCode, b.code, b.message, b.details ?? [], b.requestId);
      }
      if (err.status === 0) {
        return new ApiError(0, ErrorCode.unavailable, 'Cannot reach the Kapitan server. Check your connection.');
      }
      return new ApiError(err.status, codeForStatus(err.status), `${err.status} ${err.statusText || 'request failed'}`);
    }
    if (err instanceof Error) return new ApiError(0, ErrorCode.internal, err.message);
    return new ApiError(0, ErrorCode.internal, String(err));
  }

  /** Like {@link from}, also reading an error body that came back as a Blob (blob downloads). */
  static async fromAsync(err: unknown): Promise<ApiError> {
    if (err instanceof HttpErrorResponse && err.error instanceof Blob) {
      const text = await err.error.text().catch(() => '');
      return ApiError.from(
        new HttpErrorResponse({ error: text, status: err.status, statusText: err.statusText, url: err.url ?? undefined }),
      );
    }
    return ApiError.from(err);
  }

  /** First message per field path (`targets.machineIds.0` → also found as `targets`). */
  fieldErrors(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const d of this.details) out[d.path] ??= d.message;
    return out;
  }

  /** What to show the user in one line (snackbar). */
  override toString(): string {
    return this.requestId ? `${this.message} (request ${this.requestId})` : this.message;
  }
}

function tryJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return undefined;
  }
}

function codeForStatus(status: number): string {
  switch (status) {
    case 400:
      return ErrorCode.validation;
    case 401:
      return ErrorCode.unauthenticated;
    case 403:
      return ErrorCode.forbidden;
    case 404:
      return ErrorCode.notFound;
    case 409:
      return ErrorCode.conflict;
    case 413:
      return ErrorCode.payloadTooLarge;
    case 429:
      return ErrorCode.tooManyRequests;
    case 503:
      return ErrorCode.unavailable;
    default:
      return ErrorCode.internal;
  }
}

/**
 * Puts per-field messages (`details[].path`) on the matching controls of a form as
 * `{ server: message }`; the longest path prefix that names a control wins
 * (`targets.machineIds.0` lands on `targets.machineIds`, or `targets`, or an alias).
 * Returns the details no control took, to be shown elsewhere.
 */
export function applyFieldErrors(
  form: AbstractControl,
  details: readonly ErrorDetail[],
  aliases: Record<string, string> = {},
): ErrorDetail[] {
  const unmatched: ErrorDetail[] = [];
  for (const d of details) {
    const control = findControl(form, d.path, aliases);
    if (control) {
      control.setErrors({ ...(control.errors ?? {}), server: d.message });
      control.markAsTouched();
    } else {
      unmatched.push(d);
    }
  }
  return unmatched;
}

function findControl(form: AbstractControl, path: string, aliases: Record<string, string>): AbstractControl | null {
  const parts = path.split('.');
  for (let n = parts.length; n > 0; n--) {
    const key = parts.slice(0, n).join('.');
    const target = aliases[key] ?? key;
    const c = form.get(target);
    if (c && c !== form) return c;
  }
  return null;
}
