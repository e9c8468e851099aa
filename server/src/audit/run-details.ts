import type { AuditDetails, CreateExecutionResponse } from '@kapitan/shared';

/** Executions (and their machines) named in a run's audit event; the rest are counted. Two lists of 32 ids leave room in the 4 KiB of details for a schedule's name (schedule.fire). */
export const RUN_AUDIT_LISTED = 32;

/**
 * What `run.create` and `schedule.fire` record of a run: its id, how many executions, and the first
 * RUN_AUDIT_LISTED of them by id and machine (the run's id finds the rest).
 * Listing all of them made a run on more than about 50 machines outgrow the
 * details' limit, and its event was refused: a large fan-out left no trace.
 */
export function runAuditDetails(result: Pick<CreateExecutionResponse, 'runId' | 'executions'>): AuditDetails {
  const listed = result.executions.slice(0, RUN_AUDIT_LISTED);
  return {
    runId: result.runId,
    executions: result.executions.length,
    executionIds: listed.map((e) => e.id),
    machineIds: listed.map((e) => e.machineId),
    unlisted: result.executions.length - listed.length,
  };
}
