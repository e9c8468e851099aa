import type { ExecutionSummary } from '@kapitan/shared';
import { mergeExecution } from './merge-execution';

const ex = (id: string, status: ExecutionSummary['status'], createdAt: string): ExecutionSummary => ({
  id,
  runId: 'r',
  projectId: 'p',
  machineId: 'm',
  status,
  exitCode: null,
  signal: null,
  reason: null,
  createdAt,
  dispatchedAt: null,
  startedAt: null,
  finishedAt: null,
  durationMs: null,
});

describe('mergeExecution', () => {
  const list = [ex('b', 'running', '2026-01-02T00:00:00Z'), ex('a', 'succeeded', '2026-01-01T00:00:00Z')];

  it('updates a row in place', () => {
    const next = mergeExecution(list, ex('b', 'failed', '2026-01-02T00:00:00Z'));
    expect(next.map((e) => `${e.id}:${e.status}`)).toEqual(['b:failed', 'a:succeeded']);
  });

  it('adds a new execution on top and keeps the limit', () => {
    const next = mergeExecution(list, ex('c', 'queued', '2026-01-03T00:00:00Z'), 2);
    expect(next.map((e) => e.id)).toEqual(['c', 'b']);
  });

  it('never moves a final execution back to a running state (late duplicate)', () => {
    const next = mergeExecution(list, ex('a', 'running', '2026-01-01T00:00:00Z'));
    expect(next).toBe(list);
  });
});
