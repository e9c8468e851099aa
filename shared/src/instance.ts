import { z } from 'zod';
import { IdSchema, IsoDateSchema } from './common';

/**
 * Who may sign up: anyone (`open`), or only someone holding an invitation
 * an admin made (`invite`). The first account of a fresh instance may
 * always sign up, and becomes its admin.
 */
export const SignupModeSchema = z.enum(['open', 'invite']);
export type SignupMode = z.infer<typeof SignupModeSchema>;

/** GET /api/auth/signup-mode (public): what the sign-up page needs to know. */
export const SignupModeInfoSchema = z.object({ mode: SignupModeSchema });
export type SignupModeInfo = z.infer<typeof SignupModeInfoSchema>;

/** GET|PATCH /api/admin/settings. */
export const InstanceSettingsSchema = z.object({
  signupMode: SignupModeSchema,
  /** `env`: KAPITAN_SIGNUP decides and the setting is read-only; `setting`: an admin chose; `default`: open until the first account, then invite. */
  signupModeSource: z.enum(['env', 'setting', 'default']),
});
export type InstanceSettings = z.infer<typeof InstanceSettingsSchema>;

export const UpdateInstanceSettingsRequestSchema = z.strictObject({ signupMode: SignupModeSchema });
export type UpdateInstanceSettingsRequest = z.infer<typeof UpdateInstanceSettingsRequestSchema>;

export const INVITATION_TTL_HOURS = { default: 72, max: 30 * 24 } as const;

/** POST /api/admin/invitations. */
export const CreateInvitationRequestSchema = z.strictObject({
  expiresInHours: z.number().int().min(1).max(INVITATION_TTL_HOURS.max).optional(),
});
export type CreateInvitationRequest = z.infer<typeof CreateInvitationRequestSchema>;

export const InvitationStatusSchema = z.enum(['pending', 'used', 'expired', 'revoked']);
export type InvitationStatus = z.infer<typeof InvitationStatusSchema>;

export const InvitationSchema = z.object({
  id: IdSchema,
  /** Only in the response that created it: stored as a hash, shown once. */
  token: z.string().optional(),
  /** The sign-up link carrying the token (`/signup?invite=…`), also shown once. */
  url: z.string().optional(),
  /** First characters of the token, to tell invitations apart in a list. */
  prefix: z.string(),
  status: InvitationStatusSchema,
  createdAt: IsoDateSchema,
  expiresAt: IsoDateSchema,
  usedAt: IsoDateSchema.nullable(),
  revokedAt: IsoDateSchema.nullable(),
});
export type Invitation = z.infer<typeof InvitationSchema>;
