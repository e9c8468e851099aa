import { z } from 'zod';
import { IsoDateSchema } from './common';
import { EnrolmentTokenSchema } from './machines';
import { LIMITS } from './limits';
import { SpkiPinSchema } from './tls';

/**
 * GET /api/projects/:projectId/bundle query: the enrolment token the bundle
 * carries. Strings, as a query arrives; defaults: 10 machines, 7 days.
 */
export const BundleQuerySchema = z.strictObject({
  maxUses: z.coerce.number().int().min(1).max(LIMITS.enrolmentMaxUses).optional(),
  ttlHours: z.coerce.number().int().min(1).max(LIMITS.bundleTokenMaxTtlHours).optional(),
});
export type BundleQuery = z.infer<typeof BundleQuerySchema>;

/** `kapitan.json` in a bundle: where the agent connects and what it trusts there. */
export const BundleConfigSchema = z.object({
  serverUrl: z.url(),
  projectId: z.string(),
  /** The agent version the bundle ships. */
  version: z.string(),
  /** SPKI pins of the instance CA (current and next). */
  pins: z.array(SpkiPinSchema),
  /** The bundle's enrolment token: its id, to find it in the token list, and when it stops working. */
  enrolmentTokenId: z.string(),
  enrolmentTokenExpiresAt: IsoDateSchema.nullable(),
  createdAt: IsoDateSchema,
});
export type BundleConfig = z.infer<typeof BundleConfigSchema>;

/** POST /api/projects/:projectId/install-links: a one-line install, single use, short-lived. */
export const CreateInstallLinkRequestSchema = z.strictObject({
  ttlMinutes: z.number().int().min(5).max(LIMITS.installLinkMaxTtlMinutes).optional(),
});
export type CreateInstallLinkRequest = z.infer<typeof CreateInstallLinkRequestSchema>;

export const InstallLinkSchema = z.object({
  /** The shell command to paste on the client's machine, as root. */
  command: z.string(),
  /** The script's URL (it holds the token: treat it as a secret). */
  url: z.string(),
  /** SHA-256 pin of the serving certificate's key that the command makes curl require; null when the certificate chains to a public CA. */
  servingSpkiSha256: SpkiPinSchema.nullable(),
  token: EnrolmentTokenSchema,
});
export type InstallLink = z.infer<typeof InstallLinkSchema>;
