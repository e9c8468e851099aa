import { nextCronRuns, SCHEDULE_LIMITS } from '@kapitan/shared';

/** What the slot arithmetic needs of a schedule. */
export interface Timing {
  cron: string | null;
  timezone: string;
  runAt: Date | null;
}

/** The first slot strictly after `after`: the next cron time, or the one-shot's time if it is later. Null: no further slot. */
export function slotAfter(t: Timing, after: Date): Date | null {
  if (t.cron) return nextCronRuns(t.cron, t.timezone, after, 1)[0] ?? null;
  return t.runAt && t.runAt.getTime() > after.getTime() ? t.runAt : null;
}

/** The next fire times from `from` for display. */
export function previewSlots(t: Timing, from: Date, count: number = SCHEDULE_LIMITS.previewCount): Date[] {
  if (t.cron) return nextCronRuns(t.cron, t.timezone, from, count);
  return t.runAt && t.runAt.getTime() > from.getTime() ? [t.runAt] : [];
}
