import type { OutputStream } from '@kapitan/shared';
import { DEFAULT_COALESCE_MS, DEFAULT_PARTIAL_HOLD_MS, LineChunker, splitAtLines, type LineChunkerOptions } from './line-chunker';

type Piece = [OutputStream, string];

function make(options: LineChunkerOptions = {}): { c: LineChunker; out: Piece[]; take: () => Piece[] } {
  const out: Piece[] = [];
  const c = new LineChunker((s, d) => out.push([s, d]), options);
  return { c, out, take: () => out.splice(0) };
}

beforeEach(() => jest.useFakeTimers());
afterEach(() => jest.useRealTimers());

describe('LineChunker', () => {
  it('sends the first whole lines of a burst at once, coalesces what follows until the window closes', () => {
    const { c, take } = make();
    c.write('stdout', 'a\n');
    expect(take()).toEqual([['stdout', 'a\n']]); // leading edge: no timer
    c.write('stdout', 'b\n');
    c.write('stdout', 'c\n');
    expect(take()).toEqual([]);
    jest.advanceTimersByTime(DEFAULT_COALESCE_MS);
    expect(take()).toEqual([['stdout', 'b\nc\n']]); // trailing edge
    jest.advanceTimersByTime(DEFAULT_COALESCE_MS); // a quiet window ends the burst
    c.write('stdout', 'd\n');
    expect(take()).toEqual([['stdout', 'd\n']]); // leading edge again
  });

  it('holds a partial line until its newline, so the other stream never lands inside it', () => {
    const { c, take } = make();
    c.write('stdout', 'kkk');
    c.write('stderr', 'err 1\n');
    c.write('stdout', 'kkk\nnext');
    jest.advanceTimersByTime(DEFAULT_COALESCE_MS);
    expect(take()).toEqual([
      ['stderr', 'err 1\n'],
      ['stdout', 'kkkkkk\n'],
    ]);
    c.flush();
    expect(take()).toEqual([['stdout', 'next']]);
  });

  it('sends a partial line (prompt, \\r progress) after the hold, timed from its first character', () => {
    const { c, take } = make({ partialHoldMs: 40 });
    c.write('stdout', 'Password: ');
    jest.advanceTimersByTime(30);
    c.write('stdout', '\r 50%');
    expect(take()).toEqual([]);
    jest.advanceTimersByTime(10);
    expect(take()).toEqual([['stdout', 'Password: \r 50%']]);
  });

  it('the hold restarts for the partial line left after a newline', () => {
    const { c, take } = make({ partialHoldMs: 40, coalesceMs: 1 });
    c.write('stdout', 'ab');
    jest.advanceTimersByTime(30);
    c.write('stdout', 'c\nde');
    expect(take()).toEqual([['stdout', 'abc\n']]);
    jest.advanceTimersByTime(39);
    expect(take()).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(take()).toEqual([['stdout', 'de']]);
  });

  it('cuts a line longer than maxFragment into pieces of that size, keeping surrogate pairs whole', () => {
    const { c, take } = make({ maxFragment: 4 });
    c.write('stdout', 'abcdefghij');
    expect(take()).toEqual([['stdout', 'abcdefgh']]); // two whole fragments ready; 'ij' held
    c.write('stdout', '\n😀😀😀');
    jest.advanceTimersByTime(DEFAULT_COALESCE_MS);
    // "😀" is two UTF-16 units: a fragment of 4 units holds two, never one and a half
    expect(take()).toEqual([['stdout', 'ij\n😀😀']]);
    c.flush();
    expect(take()).toEqual([['stdout', '😀']]);
    c.write('stdout', 'x😀😀');
    expect(take()).toEqual([['stdout', 'x😀']]); // cut before the pair that would not fit
    c.flush();
    expect(take()).toEqual([['stdout', '😀']]);
  });

  it('sends at once when coalesceChars gather inside a window', () => {
    const { c, take } = make({ coalesceChars: 10 });
    c.write('stdout', 'x\n');
    take();
    c.write('stdout', '12345\n');
    expect(take()).toEqual([]);
    c.write('stdout', '6789\n');
    expect(take()).toEqual([['stdout', '12345\n6789\n']]);
  });

  it('keeps the order in which lines became whole across streams, merging neighbours of one stream', () => {
    const { c, take } = make();
    c.write('stdout', '0\n');
    take();
    c.write('stdout', 'o1\n');
    c.write('stdout', 'o2\n');
    c.write('stderr', 'e1\n');
    c.write('stdout', 'o3\n');
    jest.advanceTimersByTime(DEFAULT_COALESCE_MS);
    expect(take()).toEqual([
      ['stdout', 'o1\no2\n'],
      ['stderr', 'e1\n'],
      ['stdout', 'o3\n'],
    ]);
  });

  it('end(stream) completes that stream’s partial line; flush sends everything without waiting for a timer', () => {
    const { c, take } = make();
    c.write('stdout', 'a\n');
    take();
    c.write('stdout', 'tail');
    c.write('stderr', 'b\nerr-tail');
    c.end('stdout');
    c.flush();
    expect(take()).toEqual([
      ['stderr', 'b\n'],
      ['stdout', 'tail'],
      ['stderr', 'err-tail'],
    ]);
    expect(c.pendingChars).toBe(0);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('pieces never exceed chunkMax and end after a newline when they hold one', () => {
    const { c, take } = make({ chunkMax: 10, maxFragment: 10, coalesceChars: 1000 });
    c.write('stdout', 'x\n');
    take();
    c.write('stdout', 'aaaa\nbbbb\ncccc\n');
    jest.advanceTimersByTime(DEFAULT_COALESCE_MS);
    expect(take()).toEqual([
      ['stdout', 'aaaa\nbbbb\n'],
      ['stdout', 'cccc\n'],
    ]);
  });

  it('default hold is tens of milliseconds', () => {
    expect(DEFAULT_PARTIAL_HOLD_MS).toBeGreaterThanOrEqual(10);
    expect(DEFAULT_PARTIAL_HOLD_MS).toBeLessThan(100);
  });
});

describe('splitAtLines', () => {
  it('cuts after the last newline within the limit, else hard', () => {
    expect(splitAtLines('ab\ncd\nef', 5)).toEqual(['ab\n', 'cd\nef']);
    expect(splitAtLines('abcdefgh', 3)).toEqual(['abc', 'def', 'gh']);
    expect(splitAtLines('short', 10)).toEqual(['short']);
  });
});
