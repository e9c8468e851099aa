import type { Request, Response } from 'express';
import { assignRequestId } from './request-id';

/** Unit: which incoming X-Request-Id is kept, which is replaced. */
describe('assignRequestId', () => {
  function run(given?: string | string[]): { id: string | undefined; header: unknown } {
    const req = { headers: given === undefined ? {} : { 'x-request-id': given } } as unknown as Request & { id?: string };
    let header: unknown;
    const res = { setHeader: (name: string, value: unknown) => name === 'X-Request-Id' && (header = value) } as unknown as Response;
    const next = jest.fn();
    assignRequestId(req, res, next);
    expect(next).toHaveBeenCalledTimes(1);
    return { id: req.id, header };
  }
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

  it.each(['abc', 'trace-1234.5_6', 'A'.repeat(100)])('keeps a sane id (%s)', (given) => {
    expect(run(given)).toEqual({ id: given, header: given });
  });

  it.each([
    ['none', undefined],
    ['empty', ''],
    ['too long', 'A'.repeat(101)],
    ['spaces', 'a b'],
    ['a header-splitting attempt', 'x\r\nSet-Cookie: a=b'],
    ['markup', '<script>'],
    ['repeated header', ['a', 'b']],
  ])('replaces %s with a fresh UUID', (_, given) => {
    const { id, header } = run(given as string | string[] | undefined);
    expect(id).toMatch(UUID);
    expect(header).toBe(id);
  });

  it('gives every request its own id', () => {
    expect(run().id).not.toBe(run().id);
  });
});
