import { cronProblem, nextCronRuns, SCHEDULE_LIMITS, type OccurrenceStatus, type Schedule } from '@kapitan/shared';
import cronstrue from 'cronstrue';

/** "At 03:00 AM" for a cron expression, or why it is not one; seconds (six fields) included. */
export function describeCron(cron: string): string {
  try {
    return cronstrue.toString(cron, { use24HourTimeFormat: true, verbose: false });
  } catch (err) {
    return typeof err === 'string' ? err : 'not a cron expression';
  }
}

/** The next fire times of a timing as the form has it: the same arithmetic as the server (shared croner). */
export function previewFires(kind: 'cron' | 'once', cron: string, timezone: string, runAt: string, from = new Date()): { times: Date[]; problem: string | null } {
  if (kind === 'once') {
    const d = runAt ? new Date(runAt) : null;
    if (!d || Number.isNaN(d.getTime())) return { times: [], problem: 'Pick a date and time' };
    return d.getTime() > from.getTime() ? { times: [d], problem: null } : { times: [], problem: 'That time is in the past' };
  }
  const problem = cron.trim() ? cronProblem(cron.trim(), timezone || 'UTC') : 'Enter a cron expression';
  if (problem) return { times: [], problem };
  return { times: nextCronRuns(cron.trim(), timezone || 'UTC', from, SCHEDULE_LIMITS.previewCount), problem: null };
}

/** A date as wall time in a zone: "2026-03-29 03:00:00 CEST". */
export function inZone(d: Date, timeZone: string): string {
  return new Intl.DateTimeFormat('sv-SE', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short' }).format(d);
}

export function viewerZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

export function timingText(s: Schedule): string {
  return s.cron ? `${describeCron(s.cron)} (${s.timezone})` : `Once at ${s.runAt ? inZone(new Date(s.runAt), viewerZone()) : '—'}`;
}

/** Failed is the one to see at a glance. */
export function occurrenceTone(status: OccurrenceStatus | undefined): 'bad' | 'good' | 'busy' | 'muted' {
  switch (status) {
    case 'failed':
      return 'bad';
    case 'succeeded':
      return 'good';
    case 'running':
    case 'firing':
    case 'queued':
      return 'busy';
    default:
      return 'muted';
  }
}
