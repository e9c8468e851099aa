import type { Occurrence, OccurrenceSummary, Schedule } from '@kapitan/shared';
import { OccurrenceEntity, ScheduleEntity } from './schedule.entity';
import { previewSlots } from './schedule-times';

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

export function toOccurrenceSummary(o: OccurrenceEntity): OccurrenceSummary {
  return {
    id: o.id,
    scheduleId: o.scheduleId,
    fireAt: o.fireAt.toISOString(),
    status: o.status,
    reason: o.reason,
    // While firing, runId is only the claim token: no execution carries it yet.
    runId: o.status === 'firing' || o.status === 'queued' || o.status === 'skipped' ? null : o.runId,
    firedAt: iso(o.firedAt),
    finishedAt: iso(o.finishedAt),
  };
}

export function toOccurrence(o: OccurrenceEntity, executions: Occurrence['executions']): Occurrence {
  return { ...toOccurrenceSummary(o), executions };
}

export function toSchedule(s: ScheduleEntity, last: OccurrenceEntity | null, now: Date): Schedule {
  return {
    id: s.id,
    projectId: s.projectId,
    name: s.name,
    cron: s.cron,
    timezone: s.timezone,
    runAt: iso(s.runAt),
    enabled: s.enabled,
    missedRunPolicy: s.missedRunPolicy,
    overlapPolicy: s.overlapPolicy,
    queueLimit: s.queueLimit,
    run: s.run,
    nextRunAt: s.enabled ? iso(s.nextFireAt) : null,
    nextRuns: s.enabled ? previewSlots(s, now).map((d) => d.toISOString()) : [],
    lastOccurrence: last ? toOccurrenceSummary(last) : null,
    createdBy: s.createdBy,
    createdAt: s.createdAt.toISOString(),
    updatedAt: s.updatedAt.toISOString(),
  };
}
