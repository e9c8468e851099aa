import { z } from 'zod';
import { IdSchema, IsoDateSchema, noNul } from './common';
import { LIMITS } from './limits';

/** owner manages members and deletes; operator runs things; viewer reads. */
export const ProjectRoleSchema = z.enum(['owner', 'operator', 'viewer']);
export type ProjectRole = z.infer<typeof ProjectRoleSchema>;
export const ROLE_RANK: Record<ProjectRole, number> = { viewer: 0, operator: 1, owner: 2 };

export const CreateProjectRequestSchema = z.strictObject({
  name: noNul(z.string().trim().min(1).max(LIMITS.nameMax)),
  description: noNul(z.string().max(LIMITS.descriptionMax)).optional(),
});
export type CreateProjectRequest = z.infer<typeof CreateProjectRequestSchema>;

export const UpdateProjectRequestSchema = CreateProjectRequestSchema.partial().refine(
  (b) => Object.keys(b).length > 0,
  'nothing to update',
);
export type UpdateProjectRequest = z.infer<typeof UpdateProjectRequestSchema>;

export const ProjectSchema = z.object({
  id: IdSchema,
  name: z.string(),
  description: z.string(),
  /** The caller's role in this project. */
  role: ProjectRoleSchema,
  createdAt: IsoDateSchema,
  updatedAt: IsoDateSchema,
});
export type Project = z.infer<typeof ProjectSchema>;

export const MemberSchema = z.object({
  userId: IdSchema,
  email: z.string(),
  name: z.string().nullable(),
  role: ProjectRoleSchema,
  createdAt: IsoDateSchema,
});
export type Member = z.infer<typeof MemberSchema>;

export const AddMemberRequestSchema = z.strictObject({
  email: z.email().max(LIMITS.emailMax).transform((e) => e.toLowerCase()),
  role: ProjectRoleSchema,
});
export type AddMemberRequest = z.infer<typeof AddMemberRequestSchema>;

/**
 * POST /api/projects/:projectId/members answers the same whether or not the
 * e-mail has an account (an account is added at once; otherwise a project
 * invitation waits for that e-mail to sign up), so the answer tells nothing
 * about who has an account.
 */
export const AddMemberResponseSchema = z.object({ email: z.string(), role: ProjectRoleSchema });
export type AddMemberResponse = z.infer<typeof AddMemberResponseSchema>;

export const UpdateMemberRequestSchema = z.strictObject({ role: ProjectRoleSchema });
export type UpdateMemberRequest = z.infer<typeof UpdateMemberRequestSchema>;
