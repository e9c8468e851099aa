import { CreateExecutionRequestSchema, type CreateExecutionRequest, type Execution } from '@kapitan/shared';
import { issueMessage } from '../core/api/schema-errors';
import { formatKeyValueLines, parseKeyValueLines, parseLines } from '../core/util/key-value';

export type TargetMode = 'machines' | 'labels' | 'all';

/** The run form as typed: free text where the request has lists and maps. */
export interface RunFormValue {
  script: string;
  /** One argument per line. */
  args: string;
  /** `KEY=value` lines. */
  env: string;
  /** Names of project secrets, injected as environment variables of those names. */
  secrets: string[];
  cwd: string;
  timeoutSeconds: number | null;
  expiresInSeconds: number | null;
  targetMode: TargetMode;
  machineIds: string[];
  /** `key=value` lines: machines having all of them. */
  labels: string;
}

export type RunFormField = keyof RunFormValue;
export type RunFormErrors = Partial<Record<RunFormField, string>>;

export type RunRequestResult =
  | { ok: true; request: CreateExecutionRequest }
  | { ok: false; errors: RunFormErrors };

export const EMPTY_RUN_FORM: RunFormValue = {
  script: '',
  args: '',
  env: '',
  secrets: [],
  cwd: '',
  timeoutSeconds: null,
  expiresInSeconds: null,
  targetMode: 'machines',
  machineIds: [],
  labels: '',
};

/**
 * Form → `CreateExecutionRequest`, validated with the shared schema (the same
 * one the server uses), errors keyed by the form field that shows them.
 */
export function toCreateExecutionRequest(v: RunFormValue): RunRequestResult {
  const errors: RunFormErrors = {};

  if (v.script.trim() === '') errors.script = 'Enter a script';

  const env = parseKeyValueLines(v.env, 'NAME=value');
  if (env.errors.length) errors.env = env.errors[0];

  let targets: CreateExecutionRequest['targets'];
  switch (v.targetMode) {
    case 'machines':
      if (v.machineIds.length === 0) errors.machineIds = 'Pick at least one machine';
      targets = { machineIds: v.machineIds };
      break;
    case 'labels': {
      const labels = parseKeyValueLines(v.labels, 'key=value');
      if (labels.errors.length) errors.labels = labels.errors[0];
      else if (Object.keys(labels.values).length === 0) errors.labels = 'Give at least one key=value label';
      targets = { labels: labels.values };
      break;
    }
    case 'all':
      targets = { all: true };
      break;
  }

  const args = parseLines(v.args);
  const cwd = v.cwd.trim();
  const candidate = {
    script: v.script,
    ...(args.length ? { args } : {}),
    ...(Object.keys(env.values).length ? { env: env.values } : {}),
    ...(v.secrets.length ? { secrets: v.secrets } : {}),
    ...(cwd ? { cwd } : {}),
    ...(v.timeoutSeconds !== null ? { timeoutSeconds: v.timeoutSeconds } : {}),
    ...(v.expiresInSeconds !== null ? { expiresInSeconds: v.expiresInSeconds } : {}),
    targets,
  };

  const parsed = CreateExecutionRequestSchema.safeParse(candidate);
  if (parsed.success && Object.keys(errors).length === 0) return { ok: true, request: parsed.data };

  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const field = fieldOf(issue.path, v.targetMode);
      if (errors[field] !== undefined) continue;
      errors[field] = messageOf(issue.path, issueMessage(issue));
    }
  }
  return { ok: false, errors };
}

/** Which form field shows an error at this request path (`targets.machineIds.0` → `machineIds`). */
export function fieldOf(path: readonly PropertyKey[], mode: TargetMode): RunFormField {
  const [head, second] = path;
  switch (head) {
    case 'script':
    case 'args':
    case 'env':
    case 'secrets':
    case 'cwd':
    case 'timeoutSeconds':
    case 'expiresInSeconds':
      return head;
    case 'targets':
      if (second === 'machineIds') return 'machineIds';
      if (second === 'labels') return 'labels';
      return mode === 'labels' ? 'labels' : mode === 'machines' ? 'machineIds' : 'targetMode';
    default:
      return 'script';
  }
}

function messageOf(path: readonly PropertyKey[], message: string): string {
  const [head, second] = path;
  // Name the argument at fault (record keys are named by issueMessage).
  if (head === 'args' && typeof second === 'number') return `line ${second + 1}: ${message}`;
  return message;
}

/** Prefills the form from an earlier execution ("run again"). */
export function formFromExecution(e: Execution): RunFormValue {
  return {
    ...EMPTY_RUN_FORM,
    script: e.script,
    args: e.args.join('\n'),
    env: formatKeyValueLines(e.env),
    secrets: [...(e.secrets ?? [])],
    cwd: e.cwd ?? '',
    timeoutSeconds: e.timeoutSeconds,
    targetMode: 'machines',
    machineIds: [e.machineId],
  };
}
