import { HttpException } from '@nestjs/common';
import { ErrorCode } from '@kapitan/shared';

/** An error whose status, code and message reach the caller as they are. */
export class ApiException extends HttpException {
  constructor(
    status: number,
    readonly code: ErrorCode,
    message: string,
    readonly details?: { path: string; message: string }[],
    readonly headers?: Record<string, string>,
  ) {
    super({ code, message, details }, status);
  }
}

export const notFound = (what: string) => new ApiException(404, ErrorCode.notFound, `${what} not found`);
export const forbidden = (message: string) => new ApiException(403, ErrorCode.forbidden, message);
export const conflict = (message: string) => new ApiException(409, ErrorCode.conflict, message);
export const unauthenticated = (message = 'authentication required') => new ApiException(401, ErrorCode.unauthenticated, message);
