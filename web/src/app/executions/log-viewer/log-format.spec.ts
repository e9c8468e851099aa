import { LogFormatter, SGR_RED, SGR_RESET, TextTail, stripAnsi, wrapStderr } from './log-format';

describe('log formatting', () => {
  it('writes stdout as is and stderr in red', () => {
    const f = new LogFormatter();
    const out = f.format([
      { seq: 0, stream: 'stdout', data: 'ok\n' },
      { seq: 1, stream: 'stderr', data: 'boom\n' },
    ]);
    expect(out.terminal).toBe(`ok\n${SGR_RED}boom\n${SGR_RESET}`);
    expect(out.text).toBe('ok\nboom\n');
  });

  it('keeps stderr red across the program\'s own colour resets', () => {
    expect(wrapStderr('\x1b[1mbold\x1b[0m rest')).toBe(`${SGR_RED}\x1b[1mbold${SGR_RESET}${SGR_RED} rest${SGR_RESET}`);
    expect(wrapStderr('a\x1b[mb')).toBe(`${SGR_RED}a${SGR_RESET}${SGR_RED}b${SGR_RESET}`);
  });

  it('strips colours, OSC titles and stray control characters from the plain text', () => {
    expect(stripAnsi('\x1b[32mgreen\x1b[0m \x1b]0;title\x07done\r\n\x07')).toBe('green done\n');
    expect(stripAnsi('\x1b]8;;https://x.test\x1b\\link\x1b]8;;\x1b\\')).toBe('link');
  });

  it('leaves HTML in the output as literal text', () => {
    const f = new LogFormatter();
    const html = '<img src=x onerror="alert(1)"><script>alert(2)</script>\n';
    const out = f.format([{ seq: 0, stream: 'stdout', data: html }]);
    expect(out.text).toBe(html);
    expect(out.terminal).toBe(html);
  });

  it('does not cut an escape sequence split across two chunks of stderr', () => {
    const f = new LogFormatter();
    const a = f.format([{ seq: 0, stream: 'stderr', data: 'x\x1b[3' }]);
    const b = f.format([{ seq: 1, stream: 'stderr', data: '2mgreen?\n' }]);
    expect(a.terminal).toBe(`${SGR_RED}x${SGR_RESET}`);
    expect(b.terminal).toBe(`${SGR_RED}\x1b[32mgreen?\n${SGR_RESET}`);
    expect(a.text + b.text).toBe('xgreen?\n');
  });

  it('notes missing chunks visibly', () => {
    const f = new LogFormatter();
    expect(f.gap(4, 6).text).toContain('3 output chunks (#4–6) missing');
    expect(f.gap(4, 4).text).toContain('1 output chunk (#4) missing');
  });
});

describe('TextTail', () => {
  it('joins partial lines across appends', () => {
    const t = new TextTail(10);
    t.append('hel');
    t.append('lo\nwor');
    expect(t.toString()).toBe('hello\nwor');
    expect(t.lineCount).toBe(2);
    t.append('ld\n');
    expect(t.toString()).toBe('hello\nworld\n');
    expect(t.lineCount).toBe(2);
  });

  it('keeps only the last lines', () => {
    const t = new TextTail(3);
    for (let i = 0; i < 1000; i++) t.append(`line ${i}\n`);
    expect(t.toString()).toBe('line 997\nline 998\nline 999\n');
    expect(t.lineCount).toBe(1000);
    t.append('partial');
    expect(t.toString()).toBe('line 998\nline 999\npartial');
  });
});

describe('LogFormatter.note', () => {
  it("marks Kapitan's own lines and lets no control sequence of the note through", () => {
    const n = new LogFormatter().note('3 lines dropped\u001b[2J\u0007');
    expect(n.text).toBe('\n[kapitan] 3 lines dropped [2J \n');
    expect(stripAnsi(n.terminal)).toBe(n.text);
  });
});
