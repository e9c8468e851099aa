/**
 * The client policy: a file on the machine, written by its owner (root),
 * that bounds what the agent does whatever the server sends (threat model
 * T71–T74). The agent reads it at start, reports the policy it enforces in
 * every `agent:hello`, and ends refused work with the `refused` outcome and
 * a reason.
 */
import { z } from 'zod';
import { noNul } from './common';

export const POLICY_LIMITS = {
  /** Bytes of the policy file the agent reads. */
  fileMax: 64 * 1024,
  listMax: 1000,
  patternMax: 255,
  prefixMax: 1024,
  pathMax: 4096,
  reasonMax: 1000,
} as const;

/** Where the agent looks for its policy file unless KAPITAN_AGENT_POLICY_FILE names another. */
export const DEFAULT_AGENT_POLICY_FILE = '/etc/kapitan/agent-policy.json';
export const AGENT_POLICY_FILE_ENV = 'KAPITAN_AGENT_POLICY_FILE';

const ScriptSha256Schema = z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 of the script: 64 lower-case hexadecimal digits');
const PathPrefixSchema = noNul(
  z
    .string()
    .min(1)
    .max(POLICY_LIMITS.prefixMax)
    .startsWith('/', 'an absolute directory')
    .refine((p) => p.split('/').every((seg) => seg !== '.' && seg !== '..'), 'must not contain "." or ".." segments'),
);
/** `*` matches any run of characters (slashes too); nothing else is special. A reference without a tag is matched as `:latest`. */
const ImagePatternSchema = noNul(z.string().min(1).max(POLICY_LIMITS.patternMax).regex(/^[^\s]+$/, 'an image name pattern without spaces'));

/**
 * The file as the machine's owner writes it: every field optional, every
 * object strict (a misspelt key is refused with its path, never ignored —
 * a typo must not silently allow what it meant to forbid).
 */
export const AgentPolicySchema = z.strictObject({
  scripts: z
    .strictObject({
      enabled: z.boolean().optional(),
      /** Absent: any script; present: only scripts whose UTF-8 text has one of these sha256s. */
      allowSha256: z.array(ScriptSha256Schema).max(POLICY_LIMITS.listMax).optional(),
    })
    .optional(),
  deploys: z
    .strictObject({
      enabled: z.boolean().optional(),
      /** Absent: the agent's deploy directories. Matched as directories after the target is normalised and its directory resolved. */
      pathPrefixes: z.array(PathPrefixSchema).max(POLICY_LIMITS.listMax).optional(),
    })
    .optional(),
  docker: z
    .strictObject({
      enabled: z.boolean().optional(),
      /** Absent: any image. Applies to container creation (the spec's image) and image loads (the tarball's RepoTags). */
      images: z.array(ImagePatternSchema).max(POLICY_LIMITS.listMax).optional(),
    })
    .optional(),
  /** Nothing that changes the machine: no scripts, deploys, image loads or container actions. Reporting continues. */
  readOnly: z.boolean().optional(),
});
export type AgentPolicy = z.infer<typeof AgentPolicySchema>;

/** The policy with every default filled in: what the agent enforces. */
export const EffectivePolicySchema = z.strictObject({
  scripts: z.strictObject({ enabled: z.boolean(), allowSha256: z.array(ScriptSha256Schema).max(POLICY_LIMITS.listMax).nullable() }),
  deploys: z.strictObject({ enabled: z.boolean(), pathPrefixes: z.array(noNul(z.string().max(POLICY_LIMITS.prefixMax))).max(POLICY_LIMITS.listMax) }),
  docker: z.strictObject({ enabled: z.boolean(), images: z.array(ImagePatternSchema).max(POLICY_LIMITS.listMax).nullable() }),
  readOnly: z.boolean(),
});
export type EffectivePolicy = z.infer<typeof EffectivePolicySchema>;

/** What the agent reports in `agent:hello` and the server shows on the machine. */
export const ReportedPolicySchema = z.strictObject({
  /** The file the agent read (or looked for). */
  path: noNul(z.string().min(1).max(POLICY_LIMITS.pathMax)),
  /** False: no file there, everything allowed ("no policy file"). */
  found: z.boolean(),
  /** sha256 of the file's bytes, to compare machines' files; null without a file. */
  sha256: z.string().regex(/^[0-9a-f]{64}$/).nullable(),
  effective: EffectivePolicySchema,
});
export type ReportedPolicy = z.infer<typeof ReportedPolicySchema>;

/**
 * The outcome of work the policy refused: final, nothing was done, the
 * reason says which rule. Executions, per-machine delivery results and
 * container operations all end with it.
 */
export const REFUSED = 'refused' as const;
export const PolicyReasonSchema = noNul(z.string().min(1).max(POLICY_LIMITS.reasonMax));
export const RefusedOutcomeSchema = z.strictObject({ status: z.literal(REFUSED), reason: PolicyReasonSchema });
export type RefusedOutcome = z.infer<typeof RefusedOutcomeSchema>;
