import type { Execution, ExecutionDispatch, ExecutionSummary } from '@kapitan/shared';
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
    cwd: e.cwd,
    timeoutSeconds: e.timeoutSeconds,
    expiresAt: e.expiresAt.toISOString(),
    createdBy: e.createdBy,
    lastSeq: e.lastSeq,
  };
}

export function toDispatch(e: ExecutionEntity): ExecutionDispatch {
  return { executionId: e.id, script: e.script, args: e.args, env: e.env, cwd: e.cwd, timeoutSeconds: e.timeoutSeconds };
}
