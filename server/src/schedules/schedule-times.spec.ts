import { cronProblem, nextCronRuns } from '@kapitan/shared';
import { slotAfter } from './schedule-times';

const iso = (ds: Date[]) => ds.map((d) => d.toISOString());

describe('slots across DST', () => {
  it('spring forward (Berlin, 29 March 2026): a daily 02:30, which does not exist that night, fires once at 03:00 CEST; the days around keep 02:30 local', () => {
    expect(iso(nextCronRuns('30 2 * * *', 'Europe/Berlin', new Date('2026-03-28T00:00:00Z'), 3))).toEqual([
      '2026-03-28T01:30:00.000Z', // 02:30 CET
      '2026-03-29T01:00:00.000Z', // 03:00 CEST, the first instant after the gap
      '2026-03-30T00:30:00.000Z', // 02:30 CEST
    ]);
  });

  it('fall back (Berlin, 25 October 2026): a daily 02:30, which happens twice that night, fires once', () => {
    expect(iso(nextCronRuns('30 2 * * *', 'Europe/Berlin', new Date('2026-10-24T00:00:00Z'), 3))).toEqual([
      '2026-10-24T00:30:00.000Z', // 02:30 CEST
      '2026-10-25T00:30:00.000Z', // the first 02:30 (CEST); not again an hour later
      '2026-10-26T01:30:00.000Z', // 02:30 CET
    ]);
  });

  it('an hourly schedule through fall back fires every real hour, none twice, none lost', () => {
    const runs = nextCronRuns('0 * * * *', 'Europe/Berlin', new Date('2026-10-24T23:30:00Z'), 5);
    expect(iso(runs)).toEqual(['2026-10-25T00:00:00.000Z', '2026-10-25T01:00:00.000Z', '2026-10-25T02:00:00.000Z', '2026-10-25T03:00:00.000Z', '2026-10-25T04:00:00.000Z']);
  });

  it('New York springs forward on another date (8 March 2026): 02:30 fires at 03:00 EDT', () => {
    expect(iso(nextCronRuns('30 2 * * *', 'America/New_York', new Date('2026-03-08T05:00:00Z'), 1))).toEqual(['2026-03-08T07:00:00.000Z']);
  });

  it('the next slot counts from a slot, not from a clock: the same answer on every node', () => {
    const t = { cron: '*/10 * * * * *', timezone: 'UTC', runAt: null };
    const slot = new Date('2026-05-01T12:00:10.000Z');
    expect(slotAfter(t, slot)?.toISOString()).toBe('2026-05-01T12:00:20.000Z');
    const once = { cron: null, timezone: 'UTC', runAt: slot };
    expect(slotAfter(once, new Date(slot.getTime() - 1))).toEqual(slot);
    expect(slotAfter(once, slot)).toBeNull();
  });

  it('refuses expressions that fire too often or never', () => {
    expect(cronProblem('* * * * * *', 'UTC')).toMatch(/more often/);
    expect(cronProblem('*/2 * * * * *', 'UTC')).toBeNull();
    expect(cronProblem('0 0 30 2 *', 'UTC')).toMatch(/never/);
    expect(cronProblem('nope', 'UTC')).not.toBeNull();
  });
});
