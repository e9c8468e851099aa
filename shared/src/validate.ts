import type { z } from 'zod';
import type { ErrorAckBody } from './events';
import { ErrorCode } from './common';

/** zod issues as `{ path, message }`, the `details` of the error shape. */
export function issueDetails(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.flatMap((i) => {
    // An unknown field is named by its own path, not reported at its parent.
    if (i.code === 'unrecognized_keys' && i.keys.length) {
      return i.keys.map((key) => ({ path: [...i.path, key].map(String).join('.'), message: `unknown field "${key}"` }));
    }
    return [{ path: i.path.length ? i.path.map(String).join('.') : '(root)', message: i.message }];
  });
}

/** Parse a socket payload; on failure the error ack body names the fields at fault. */
export function parsePayload<S extends z.ZodType>(
  schema: S,
  payload: unknown,
): { ok: true; value: z.output<S> } | { ok: false; error: ErrorAckBody } {
  const r = schema.safeParse(payload);
  if (r.success) return { ok: true, value: r.data };
  const details = issueDetails(r.error);
  return {
    ok: false,
    error: {
      code: ErrorCode.validation,
      message: `invalid payload: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`,
      details,
    },
  };
}
