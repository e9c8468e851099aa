import { z } from 'zod';
import { LIMITS } from './limits';

/**
 * An id as it travels. Stored ids are lower case, so any spelling a client
 * sends is normalised here, once: an upper-case id then names the same row
 * and the same socket.io room as the stored one.
 */
export const IdSchema = z.uuid().toLowerCase();

/**
 * Refuses a string holding a NUL byte. Arguments, environment, paths and
 * names end up in execve and the file system, which stop at the first NUL;
 * the agent refuses such work, so the server must refuse it at the door
 * (400 naming the field) instead of accepting a run that can only fail.
 */
export function noNul<T extends z.ZodType<string>>(schema: T): T {
  return schema.refine((v) => !v.includes('\0'), 'must not contain NUL bytes') as T;
}
export type Id = z.infer<typeof IdSchema>;

/** ISO-8601 date-time as it travels in JSON. */
export const IsoDateSchema = z.iso.datetime({ offset: true });

export const LabelKeySchema = z
  .string()
  .min(1)
  .max(LIMITS.labelKeyMax)
  .regex(/^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$/, 'label keys are letters, digits, ".", "_", "-" and "/"');
export const LabelValueSchema = noNul(z.string().max(LIMITS.labelValueMax));
export const LabelsSchema = z
  .record(LabelKeySchema, LabelValueSchema)
  .refine((l) => Object.keys(l).length <= LIMITS.labelsMax, `at most ${LIMITS.labelsMax} labels`);
export type Labels = z.infer<typeof LabelsSchema>;

/** The one error shape of every REST response and every error ack. */
export const ErrorBodySchema = z.object({
  statusCode: z.number().int(),
  code: z.string(),
  message: z.string(),
  details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  requestId: z.string().optional(),
});
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

/** Stable machine-readable error codes (the `code` field). */
export const ErrorCode = {
  validation: 'validation_failed',
  unauthenticated: 'unauthenticated',
  forbidden: 'forbidden',
  notFound: 'not_found',
  conflict: 'conflict',
  tooManyRequests: 'too_many_requests',
  payloadTooLarge: 'payload_too_large',
  unavailable: 'service_unavailable',
  internal: 'internal_error',
  enrolmentRefused: 'enrolment_refused',
  malformedBody: 'malformed_body',
  insufficientStorage: 'insufficient_storage',
  /**
   * Final: this machine's credential was revoked, or the machine or its
   * project deleted. The agent stops and does not retry (it must be enrolled
   * again); sent in the handshake refusal and in report acks.
   */
  machineRevoked: 'machine_revoked',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];
