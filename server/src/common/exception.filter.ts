import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import { ErrorBody, ErrorCode, issueDetails } from '@kapitan/shared';
import type { Request, Response } from 'express';
import { ZodValidationException } from 'nestjs-zod';
import { ZodError } from 'zod';
import { ApiException } from './api-exception';

const STATUS_CODES: Record<number, ErrorCode> = {
  400: ErrorCode.validation,
  401: ErrorCode.unauthenticated,
  403: ErrorCode.forbidden,
  404: ErrorCode.notFound,
  409: ErrorCode.conflict,
  413: ErrorCode.payloadTooLarge,
  429: ErrorCode.tooManyRequests,
  503: ErrorCode.unavailable,
  507: ErrorCode.insufficientStorage,
};

/** Database failures that mean "try again later", not "we have a bug". */
const UNAVAILABLE_DB_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'PROTOCOL_CONNECTION_LOST',
  'ER_CON_COUNT_ERROR',
  'ER_SERVER_SHUTDOWN',
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
]);

export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: string; fatal?: boolean; message?: string; driverError?: { code?: string; fatal?: boolean; message?: string }; name?: string } | undefined;
  const code = e?.driverError?.code ?? e?.code;
  const message = e?.driverError?.message ?? e?.message ?? '';
  // mysql2 marks a lost connection `fatal`; a pooled connection that died meanwhile says "closed state".
  return (
    (!!code && UNAVAILABLE_DB_CODES.has(code)) ||
    e?.fatal === true ||
    e?.driverError?.fatal === true ||
    /connection is in closed state|Connection lost|Pool is closed/i.test(message)
  );
}

/** The one error shape of the HTTP API, with the request id that also tags the log line. */
@Catch()
export class ApiExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('Http');

  catch(exception: unknown, host: ArgumentsHost): void {
    if (host.getType() !== 'http') throw exception;
    const res = host.switchToHttp().getResponse<Response>();
    const req = host.switchToHttp().getRequest<Request & { id?: string }>();
    const body = this.toBody(exception);
    body.requestId = req.id !== undefined ? String(req.id) : undefined;
    if (body.statusCode >= 500 && body.statusCode !== 503 && body.statusCode !== 507) {
      this.logger.error({ err: exception, requestId: body.requestId }, 'unhandled error');
    } else {
      this.logger.debug({ requestId: body.requestId, statusCode: body.statusCode, code: body.code, msg: body.message });
    }
    if (exception instanceof ApiException && exception.headers) {
      for (const [k, v] of Object.entries(exception.headers)) res.setHeader(k, v);
    }
    if (res.headersSent) {
      res.end();
      return;
    }
    res.status(body.statusCode).json(body);
  }

  private toBody(exception: unknown): ErrorBody {
    return toErrorBody(exception);
  }
}

/**
 * zod issues as `details`, each naming its field. An unknown field is
 * reported by zod at the object holding it (`(root)` for the body); here it
 * becomes one entry per unknown key with the key's own path, so
 * `{"email": …, "isAdmin": true}` answers `details: [{path: "isAdmin", …}]`.
 */
/** zod issues as `details`; one definition in shared for REST and socket acks alike. */
export const validationDetails = (error: ZodError): { path: string; message: string }[] => issueDetails(error);

/** Any thrown thing as the API's error shape. */
export function toErrorBody(exception: unknown): ErrorBody {
  if (exception instanceof ZodValidationException) {
    const details = validationDetails(exception.getZodError() as ZodError);
    return {
      statusCode: 400,
      code: ErrorCode.validation,
      message: `invalid request: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`,
      details,
    };
  }
  if (exception instanceof ApiException) {
    return { statusCode: exception.getStatus(), code: exception.code, message: exception.message, details: exception.details };
  }
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    const r = exception.getResponse();
    const message = typeof r === 'string' ? r : ((r as { message?: unknown }).message ?? exception.message);
    return {
      statusCode: status,
      code: STATUS_CODES[status] ?? (status >= 500 ? ErrorCode.internal : ErrorCode.validation),
      message: Array.isArray(message) ? message.join('; ') : String(message),
    };
  }
  // body-parser's errors carry a status and a type.
  const e = exception as { status?: number; type?: string; message?: string };
  if (e?.type === 'entity.parse.failed') {
    return { statusCode: 400, code: ErrorCode.malformedBody, message: 'malformed JSON body' };
  }
  if (e?.type === 'entity.too.large') {
    return { statusCode: 413, code: ErrorCode.payloadTooLarge, message: 'request body too large' };
  }
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) {
    return { statusCode: e.status, code: STATUS_CODES[e.status] ?? ErrorCode.validation, message: e.message ?? 'bad request' };
  }
  if (isDatabaseUnavailable(exception)) {
    return { statusCode: 503, code: ErrorCode.unavailable, message: 'the database is unavailable; try again shortly' };
  }
  return { statusCode: 500, code: ErrorCode.internal, message: 'internal error' };
}

/**
 * Express error middleware for what fails before Nest routes a request
 * (the JSON body parser): the same shape, the same request id.
 */
export function bodyParserErrorHandler(err: unknown, req: Request & { id?: string }, res: Response, next: (e?: unknown) => void): void {
  if (!err) return next();
  const body = toErrorBody(err);
  body.requestId = req.id !== undefined ? String(req.id) : undefined;
  res.status(body.statusCode).json(body);
}
