import { AUDIT_DETAILS_MAX_BYTES, AuditDetailsSchema, type CreateExecutionResponse } from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import { RUN_AUDIT_LISTED, runAuditDetails } from './run-details';

const run = (n: number): CreateExecutionResponse =>
  ({ runId: randomUUID(), executions: Array.from({ length: n }, () => ({ id: randomUUID(), machineId: randomUUID() })) }) as unknown as CreateExecutionResponse;

describe('run.create audit details', () => {
  test.each([1, RUN_AUDIT_LISTED, RUN_AUDIT_LISTED + 1, 1_000, 10_000])('a run on %i machines fits the details schema', (n) => {
    const r = run(n);
    const details = runAuditDetails(r);
    expect(AuditDetailsSchema.safeParse(details).success).toBe(true);
    expect(new TextEncoder().encode(JSON.stringify(details)).length).toBeLessThanOrEqual(AUDIT_DETAILS_MAX_BYTES);
    const listed = Math.min(n, RUN_AUDIT_LISTED);
    expect(details).toEqual({
      runId: r.runId,
      executions: n,
      executionIds: r.executions.slice(0, listed).map((e) => e.id),
      machineIds: r.executions.slice(0, listed).map((e) => e.machineId),
      unlisted: n - listed,
    });
  });

  test('every id listed, as before, would not fit a run on 60 machines (why the lists are cut)', () => {
    const r = run(60);
    expect(AuditDetailsSchema.safeParse({ runId: r.runId, executionIds: r.executions.map((e) => e.id), machineIds: r.executions.map((e) => e.machineId) }).success).toBe(false);
  });
});

test('schedule.fire: a run on 10,000 machines beside the longest schedule name, every character escaped, still fits', () => {
  const name = '\u0001'.repeat(128); // 6 bytes of JSON each
  const details = { scheduleId: randomUUID(), name, fireAt: new Date().toISOString(), ...runAuditDetails(run(10_000)) };
  expect(AuditDetailsSchema.safeParse(details).success).toBe(true);
});
