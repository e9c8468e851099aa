import type { Execution, ExecutionDispatch, ExecutionSummary } from '@kapitan/shared';
import type { ResolvedSecrets } from '../secrets/secrets.service';
import { ExecutionEntity } from './execution.entity';

export function toSummary(e: ExecutionEntity): ExecutionSummary {
  return {
    id: e.id,
    runId: e.runId,
    projectId: e.projectId,
    machineId: e.machineId,
    status: e.status,
    exitCode: e.exitCode,
    signal: e.signal,
    reason: e.reason,
    createdAt: e.createdAt.toISOString(),
    dispatchedAt: e.dispatchedAt?.toISOString() ?? null,
    startedAt: e.startedAt?.toISOString() ?? null,
    finishedAt: e.finishedAt?.toISOString() ?? null,
    durationMs: e.startedAt && e.finishedAt ? e.finishedAt.getTime() - e.startedAt.getTime() : null,
  };
}

export function toExecution(e: ExecutionEntity): Execution {
  return {
    ...toSummary(e),
    script: e.script,
    args: e.args,
    env: e.env,
    secrets: e.secrets ?? [],
    fileId: e.fileId ?? null,
    fileSha256: e.fileSha256 ?? null,
    cwd: e.cwd,
    timeoutSeconds: e.timeoutSeconds,
    expiresAt: e.expiresAt.toISOString(),
    createdBy: e.createdBy,
    lastSeq: e.lastSeq,
  };
}

/** The push to the agent; with `resolved` (values read at this dispatch) when the run references secrets. */
export function toDispatch(e: ExecutionEntity, resolved?: ResolvedSecrets): ExecutionDispatch {
  const d: ExecutionDispatch = { executionId: e.id, script: e.script, args: e.args, env: e.env, cwd: e.cwd, timeoutSeconds: e.timeoutSeconds };
  // Absent, not empty, for runs without secrets: their dispatch is what it was before secrets existed.
  if (resolved && Object.keys(resolved.env).length) Object.assign(d, { secretEnv: resolved.env, masks: resolved.masks });
  return d;
}
