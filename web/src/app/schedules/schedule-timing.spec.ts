import { describeCron, inZone, occurrenceTone, previewFires } from './schedule-timing';

describe('schedule timing on the page', () => {
  it('reads cron expressions in words, seconds included', () => {
    expect(describeCron('0 3 * * *')).toBe('At 03:00');
    expect(describeCron('*/2 * * * * *')).toBe('Every 2 seconds');
    expect(describeCron('not cron')).not.toBe('');
  });

  it('previews the next five fires with the server arithmetic, and says why when it cannot', () => {
    const from = new Date('2026-03-28T00:00:00Z');
    const p = previewFires('cron', '30 2 * * *', 'Europe/Berlin', '', from);
    expect(p.problem).toBeNull();
    expect(p.times.map((d) => d.toISOString()).slice(0, 2)).toEqual(['2026-03-28T01:30:00.000Z', '2026-03-29T01:00:00.000Z']);
    expect(p.times).toHaveLength(5);
    expect(previewFires('cron', '* * * * * *', 'UTC', '', from).problem).toMatch(/more often/);
    expect(previewFires('once', '', 'UTC', '2020-01-01T00:00:00Z', from).problem).toMatch(/past/);
    expect(previewFires('once', '', 'UTC', '2026-04-01T00:00:00Z', from).times).toHaveLength(1);
  });

  it('shows a time as wall time in a zone', () => {
    expect(inZone(new Date('2026-07-01T12:00:00Z'), 'Asia/Kolkata')).toContain('17:30:00');
  });

  it('a failed occurrence is the bad tone', () => {
    expect(occurrenceTone('failed')).toBe('bad');
    expect(occurrenceTone('succeeded')).toBe('good');
    expect(occurrenceTone('skipped')).toBe('muted');
  });
});
