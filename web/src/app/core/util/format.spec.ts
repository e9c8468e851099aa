import { executionDuration, formatBytes, formatDuration, timeAgo } from './format';

describe('format', () => {
  const now = Date.parse('2026-05-01T12:00:00Z');

  it('timeAgo', () => {
    expect(timeAgo(null, now)).toBe('—');
    expect(timeAgo('2026-05-01T11:59:58Z', now)).toBe('just now');
    expect(timeAgo('2026-05-01T11:59:00Z', now)).toBe('1 min ago');
    expect(timeAgo('2026-05-01T09:00:00Z', now)).toBe('3 h ago');
    expect(timeAgo('2026-04-28T12:00:00Z', now)).toBe('3 d ago');
    expect(timeAgo('2026-05-02T12:00:00Z', now)).toBe('in 1 d');
  });

  it('formatDuration', () => {
    expect(formatDuration(null)).toBe('—');
    expect(formatDuration(850)).toBe('850 ms');
    expect(formatDuration(1500)).toBe('1.5 s');
    expect(formatDuration(42_000)).toBe('42 s');
    expect(formatDuration(245_000)).toBe('4 min 05 s');
    expect(formatDuration(7_380_000)).toBe('2 h 03 min');
  });

  it('executionDuration runs on against the clock until the execution ends', () => {
    const running = { durationMs: null, startedAt: '2026-05-01T11:59:00Z', finishedAt: null };
    expect(executionDuration(running, now)).toBe(60_000);
    expect(executionDuration({ ...running, durationMs: 1234 }, now)).toBe(1234);
    expect(executionDuration({ ...running, startedAt: null }, now)).toBeNull();
  });

  it('formatBytes', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(8 * 1024 ** 3)).toBe('8.0 GiB');
  });
});
