import { BadRequestException, ForbiddenException, HttpException, NotFoundException } from '@nestjs/common';
import { ErrorCode } from '@kapitan/shared';
import { ZodValidationException } from 'nestjs-zod';
import { z } from 'zod';
import { ApiException, conflict, forbidden, notFound, unauthenticated } from './api-exception';
import { isDatabaseUnavailable, toErrorBody, validationDetails } from './exception.filter';

/** Unit: every kind of thrown thing maps to the one error shape. No I/O. */
describe('toErrorBody', () => {
  const Body = z.strictObject({ email: z.email(), nested: z.strictObject({ n: z.number() }).optional() });

  it('turns a zod validation failure into 400 validation_failed naming each field', () => {
    const r = Body.safeParse({ email: 42, nested: { n: 'x' } });
    const body = toErrorBody(new ZodValidationException(r.error!));
    expect(body).toEqual({
      statusCode: 400,
      code: ErrorCode.validation,
      message: expect.stringContaining('email:'),
      details: [
        { path: 'email', message: expect.any(String) },
        { path: 'nested.n', message: expect.any(String) },
      ],
    });
  });

  it('names unknown fields by their own path, one entry per key (not "(root)")', () => {
    const r = Body.safeParse({ email: 'a@b.co', isAdmin: true, role: 'x', nested: { n: 1, extra: 1 } });
    const byPath = (a: { path: string }, b: { path: string }) => a.path.localeCompare(b.path);
    expect(validationDetails(r.error!).sort(byPath)).toEqual([
      { path: 'isAdmin', message: 'unknown field "isAdmin"' },
      { path: 'nested.extra', message: 'unknown field "extra"' },
      { path: 'role', message: 'unknown field "role"' },
    ]);
  });

  it('keeps a whole-body rule at "(root)"', () => {
    const r = z.object({}).refine(() => false, 'nothing to update').safeParse({});
    expect(validationDetails(r.error!)).toEqual([{ path: '(root)', message: 'nothing to update' }]);
  });

  it('passes an ApiException through as it is', () => {
    expect(toErrorBody(notFound('project'))).toEqual({ statusCode: 404, code: 'not_found', message: 'project not found', details: undefined });
    expect(toErrorBody(forbidden('no'))).toMatchObject({ statusCode: 403, code: 'forbidden', message: 'no' });
    expect(toErrorBody(conflict('dup'))).toMatchObject({ statusCode: 409, code: 'conflict' });
    expect(toErrorBody(unauthenticated())).toMatchObject({ statusCode: 401, code: 'unauthenticated', message: 'authentication required' });
    const withDetails = new ApiException(422, ErrorCode.validation, 'bad', [{ path: 'a', message: 'b' }]);
    expect(toErrorBody(withDetails)).toEqual({ statusCode: 422, code: 'validation_failed', message: 'bad', details: [{ path: 'a', message: 'b' }] });
  });

  it("maps Nest's own HttpExceptions by status", () => {
    expect(toErrorBody(new NotFoundException('Cannot GET /api/nope'))).toEqual({
      statusCode: 404,
      code: 'not_found',
      message: 'Cannot GET /api/nope',
    });
    expect(toErrorBody(new ForbiddenException())).toMatchObject({ statusCode: 403, code: 'forbidden', message: 'Forbidden' });
    expect(toErrorBody(new BadRequestException(['a is wrong', 'b is wrong']))).toMatchObject({
      statusCode: 400,
      code: 'validation_failed',
      message: 'a is wrong; b is wrong',
    });
    expect(toErrorBody(new HttpException('plain', 429))).toMatchObject({ statusCode: 429, code: 'too_many_requests', message: 'plain' });
    expect(toErrorBody(new HttpException('gone', 502))).toMatchObject({ statusCode: 502, code: 'internal_error' });
  });

  it("maps the JSON body parser's errors: malformed → 400, too large → 413", () => {
    expect(toErrorBody({ status: 400, type: 'entity.parse.failed', message: 'Unexpected token' })).toEqual({
      statusCode: 400,
      code: 'malformed_body',
      message: 'malformed JSON body',
    });
    expect(toErrorBody({ status: 413, type: 'entity.too.large' })).toEqual({
      statusCode: 413,
      code: 'payload_too_large',
      message: 'request body too large',
    });
    expect(toErrorBody({ status: 415, type: 'charset.unsupported', message: 'unsupported charset "X"' })).toMatchObject({
      statusCode: 415,
      message: 'unsupported charset "X"',
    });
  });

  it('answers 503 for a database that is away, 500 (saying nothing more) for anything else', () => {
    expect(toErrorBody({ code: 'ECONNREFUSED' })).toMatchObject({ statusCode: 503, code: 'service_unavailable' });
    expect(toErrorBody({ name: 'QueryFailedError', driverError: { code: 'PROTOCOL_CONNECTION_LOST' } })).toMatchObject({ statusCode: 503 });
    const internal = toErrorBody(new Error('secret internals: password=hunter2'));
    expect(internal).toEqual({ statusCode: 500, code: 'internal_error', message: 'internal error' });
    expect(toErrorBody(undefined)).toMatchObject({ statusCode: 500 });
    expect(toErrorBody('a string')).toMatchObject({ statusCode: 500 });
    // A 5xx "status" on an unknown object is not trusted to be a client error.
    expect(toErrorBody({ status: 500, message: 'x' })).toMatchObject({ statusCode: 500, message: 'internal error' });
  });
});

describe('isDatabaseUnavailable', () => {
  it.each(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'PROTOCOL_CONNECTION_LOST', 'ER_CON_COUNT_ERROR', 'ER_SERVER_SHUTDOWN', 'SQLITE_BUSY'])(
    '%s is unavailability',
    (code) => {
      expect(isDatabaseUnavailable({ code })).toBe(true);
      expect(isDatabaseUnavailable({ driverError: { code } })).toBe(true);
    },
  );
  it.each(['ER_DUP_ENTRY', 'ER_PARSE_ERROR', 'SQLITE_CONSTRAINT_UNIQUE', undefined])('%s is not', (code) => {
    expect(isDatabaseUnavailable({ code })).toBe(false);
  });
});
