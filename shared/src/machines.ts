import { z } from 'zod';
import { IdSchema, IsoDateSchema, LabelsSchema, noNul } from './common';
import { LIMITS } from './limits';
import { ReportedPolicySchema } from './policy';

export const CreateEnrolmentTokenRequestSchema = z.strictObject({
  expiresAt: IsoDateSchema.optional(),
  maxUses: z.number().int().min(1).max(LIMITS.enrolmentMaxUses).optional(),
  /** Labels every machine enrolled with this token starts with. */
  labels: LabelsSchema.optional(),
  /**
   * May an enrolling agent add labels of its own (`enrol --label`)? Only
   * keys the token does not set: the token's labels always win. Default false:
   * the token's labels are the machine's labels.
   */
  allowAgentLabels: z.boolean().optional(),
});
export type CreateEnrolmentTokenRequest = z.infer<typeof CreateEnrolmentTokenRequestSchema>;

/** Why a token exists: made by hand, inside a downloaded bundle, or behind a one-line install command. */
export const EnrolmentTokenPurposeSchema = z.enum(['manual', 'bundle', 'install']);
export type EnrolmentTokenPurpose = z.infer<typeof EnrolmentTokenPurposeSchema>;

export const EnrolmentTokenSchema = z.object({
  id: IdSchema,
  /** Only in the response that created it: stored as a hash, shown once. */
  token: z.string().optional(),
  /** First characters of the token, to tell tokens apart in a list. */
  prefix: z.string(),
  expiresAt: IsoDateSchema.nullable(),
  maxUses: z.number().int().nullable(),
  uses: z.number().int(),
  purpose: EnrolmentTokenPurposeSchema,
  labels: LabelsSchema,
  allowAgentLabels: z.boolean(),
  revokedAt: IsoDateSchema.nullable(),
  createdAt: IsoDateSchema,
});
export type EnrolmentToken = z.infer<typeof EnrolmentTokenSchema>;

/** What the agent tells about its host, at enrolment and at every connect. */
export const MachineFactsSchema = z.strictObject({
  hostname: noNul(z.string().min(1).max(255)),
  os: noNul(z.string().max(255)),
  platform: noNul(z.string().max(64)),
  kernel: noNul(z.string().max(255)),
  arch: noNul(z.string().max(64)),
  cpus: z.number().int().min(0).max(100_000),
  memoryBytes: z.number().int().min(0),
  agentVersion: noNul(z.string().max(64)),
  dockerAvailable: z.boolean(),
});
export type MachineFacts = z.infer<typeof MachineFactsSchema>;

/** POST /api/agent/enrol: the one unauthenticated agent call; the token is the credential. */
export const EnrolRequestSchema = z.strictObject({
  token: z.string().min(1).max(200),
  facts: MachineFactsSchema,
  labels: LabelsSchema.optional(),
});
export type EnrolRequest = z.infer<typeof EnrolRequestSchema>;

export const EnrolResponseSchema = z.object({
  machineId: IdSchema,
  projectId: IdSchema,
  /** The machine credential: stored as a hash by the server, kept 0600 by the agent. */
  credential: z.string(),
});
export type EnrolResponse = z.infer<typeof EnrolResponseSchema>;

export const MachineStatusSchema = z.enum(['online', 'offline']);
export type MachineStatus = z.infer<typeof MachineStatusSchema>;

export const MachineSchema = z.object({
  id: IdSchema,
  projectId: IdSchema,
  hostname: z.string(),
  status: MachineStatusSchema,
  labels: LabelsSchema,
  facts: MachineFactsSchema.nullable(),
  /** The client policy its agent reported at its last hello; null until an agent that reports one connected. */
  policy: ReportedPolicySchema.nullable(),
  lastSeenAt: IsoDateSchema.nullable(),
  connectedAt: IsoDateSchema.nullable(),
  createdAt: IsoDateSchema,
});
export type Machine = z.infer<typeof MachineSchema>;

export const UpdateMachineRequestSchema = z.strictObject({ labels: LabelsSchema });
export type UpdateMachineRequest = z.infer<typeof UpdateMachineRequestSchema>;
