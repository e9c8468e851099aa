import { z } from 'zod';
import { IdSchema, IsoDateSchema, noNul } from './common';
import { LIMITS } from './limits';

const EmailSchema = z.email().max(LIMITS.emailMax).transform((e) => e.toLowerCase());

export const SignupRequestSchema = z.strictObject({
  email: EmailSchema,
  password: z.string().min(LIMITS.passwordMin).max(LIMITS.passwordMax),
  name: noNul(z.string().trim().min(1).max(LIMITS.nameMax)).optional(),
  /** The token of a sign-up invitation (the `invite` of its link); needed while sign-up is by invitation. */
  invitation: z.string().min(1).max(200).optional(),
});
export type SignupRequest = z.infer<typeof SignupRequestSchema>;

export const LoginRequestSchema = z.strictObject({
  email: EmailSchema,
  password: z.string().min(1).max(LIMITS.passwordMax),
});
export type LoginRequest = z.infer<typeof LoginRequestSchema>;

export const UserSchema = z.object({
  id: IdSchema,
  email: z.string(),
  name: z.string().nullable(),
  isAdmin: z.boolean(),
  createdAt: IsoDateSchema,
});
export type User = z.infer<typeof UserSchema>;

export const AuthResponseSchema = z.object({ user: UserSchema, accessToken: z.string() });
export type AuthResponse = z.infer<typeof AuthResponseSchema>;
