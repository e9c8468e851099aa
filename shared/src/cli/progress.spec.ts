import { formatBytes, ProgressBar } from './progress';

describe('ProgressBar', () => {
  it('prints one line per tenth when stderr is not a terminal', () => {
    const lines: string[] = [];
    const bar = new ProgressBar('image.tar', 1000, { isTTY: false, write: (t) => lines.push(t) }, 10);
    for (let done = 0; done <= 1000; done += 25) bar.update(done);
    bar.finish('sha256 abc');
    expect(lines).toHaveLength(12);
    expect(lines[0]).toMatch(/^image\.tar \[\.{10}\]\s+0% 0 B\/1000 B/);
    expect(lines[10]).toMatch(/^image\.tar \[#{10}\] 100% 1000 B\/1000 B/);
    expect(lines[11]).toBe('image.tar sha256 abc\n');
    expect(lines.every((l) => !l.includes('\r'))).toBe(true);
  });

  it('redraws one line on a terminal', () => {
    const out: string[] = [];
    const bar = new ProgressBar('x', 10, { isTTY: true, write: (t) => out.push(t) });
    bar.update(10);
    bar.finish();
    expect(out[0].startsWith('\r')).toBe(true);
    expect(out[0]).toContain('100%');
    expect(out[1]).toBe('\n');
  });

  it('formats sizes in binary units', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(3 * 1024 ** 3)).toBe('3.0 GiB');
  });
});
