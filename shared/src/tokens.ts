import { z } from 'zod';
import { IdSchema, IsoDateSchema, noNul } from './common';
import { LIMITS } from './limits';
import { ProjectRoleSchema } from './projects';

/**
 * API tokens: how operators script the HTTP API (CI, cron) without a browser
 * session. One token belongs to one user and acts in one project with at most
 * one role. Its value is `kpt_<id>.<secret>`, shown once at creation.
 */
export const API_TOKEN_PREFIX = 'kpt';

export const API_TOKEN_LIMITS = {
  /** Live (unrevoked) tokens one user may hold; bounds the table and the list page. */
  perUserMax: 100,
} as const;

export const CreateApiTokenRequestSchema = z.strictObject({
  name: noNul(z.string().trim().min(1).max(LIMITS.nameMax)),
  projectId: IdSchema,
  role: ProjectRoleSchema,
  /** Omitted: the token lives until revoked. */
  expiresAt: IsoDateSchema.refine((v) => Date.parse(v) > Date.now(), 'must be in the future').optional(),
});
export type CreateApiTokenRequest = z.infer<typeof CreateApiTokenRequestSchema>;

/** A token as listed: everything but its value, which is never stored. */
export const ApiTokenSchema = z.object({
  id: IdSchema,
  name: z.string(),
  projectId: IdSchema,
  /** The project's name, for the list; null if the project is gone. */
  projectName: z.string().nullable(),
  role: ProjectRoleSchema,
  createdAt: IsoDateSchema,
  /** Updated at most once a minute, so accurate to the minute. */
  lastUsedAt: IsoDateSchema.nullable(),
  expiresAt: IsoDateSchema.nullable(),
});
export type ApiToken = z.infer<typeof ApiTokenSchema>;

/** The answer to a create: the only time the value is shown. */
export const CreatedApiTokenSchema = ApiTokenSchema.extend({ token: z.string() });
export type CreatedApiToken = z.infer<typeof CreatedApiTokenSchema>;
