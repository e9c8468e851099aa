/**
 * Turns what a process writes on its two streams into output pieces that
 * end at line ends, the way Docker's log driver cuts at newlines, so that
 * stdout and stderr interleave only between whole lines in the combined log.
 *
 * Rules (all per stream, text already decoded):
 * - Text up to the last `\n` is ready at once. What follows it (a partial
 *   line) is held until its newline comes, until it reaches `maxFragment`
 *   characters (then that much is ready, as Docker cuts at 16 KiB), or until
 *   it has been held `partialHoldMs` (a prompt, a `\r` progress bar: shown
 *   after a short delay, never held back for good). `end(stream)` and
 *   `flush()` make everything ready.
 * - Ready text is kept in the order it became ready, whatever its stream;
 *   adjacent pieces of the same stream are merged.
 * - Leading edge, then trailing: the first ready text after a quiet period
 *   is emitted at once and opens a window of `coalesceMs`; what becomes
 *   ready inside the window is emitted when it closes (and opens the next
 *   window), or at once when `coalesceChars` have gathered. A window in
 *   which nothing became ready ends the burst.
 * - Emitted pieces are at most `chunkMax` characters, cut after a newline
 *   whenever the piece holds one (whole lines are never split because lines
 *   longer than `maxFragment` < `chunkMax` were already cut), else
 *   anywhere but between the two halves of a surrogate pair.
 *
 * No I/O of its own; timers are injectable for fake-timer specs.
 */
import { LIMITS, type OutputStream } from '@kapitan/shared';

export const DEFAULT_COALESCE_MS = 15;
export const DEFAULT_COALESCE_CHARS = 32 * 1024;
/** How long a partial line (no newline yet) waits before it is sent anyway. */
export const DEFAULT_PARTIAL_HOLD_MS = 50;
/** Longest piece of one line sent on its own; a longer line is cut into pieces of this size (Docker: 16 KiB). */
export const DEFAULT_MAX_FRAGMENT = 16 * 1024;

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface LineChunkerOptions {
  coalesceMs?: number;
  coalesceChars?: number;
  partialHoldMs?: number;
  maxFragment?: number;
  /** Characters per emitted piece; default (and maximum) LIMITS.chunkDataMax. */
  chunkMax?: number;
  timers?: Timers;
}

export type PieceSink = (stream: OutputStream, data: string) => void;

interface Ready {
  stream: OutputStream;
  parts: string[];
}

/** Cut `text` into pieces of at most `max` UTF-16 units, never between a surrogate pair. */
export function splitText(text: string, max: number): string[] {
  if (text.length <= max) return [text];
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    let end = Math.min(i + max, text.length);
    if (end < text.length && end - i > 1) {
      const c = text.charCodeAt(end - 1);
      if (c >= 0xd800 && c <= 0xdbff) end--; // high surrogate: keep the pair together
    }
    out.push(text.slice(i, end));
    i = end;
  }
  return out;
}

/** Like splitText, but each piece ends after its last newline when it has one. */
export function splitAtLines(text: string, max: number): string[] {
  if (text.length <= max) return [text];
  const out: string[] = [];
  let i = 0;
  while (text.length - i > max) {
    const nl = text.lastIndexOf('\n', i + max - 1);
    if (nl >= i) {
      out.push(text.slice(i, nl + 1));
      i = nl + 1;
    } else {
      const [piece] = splitText(text.slice(i, i + max + 1), max);
      out.push(piece!);
      i += piece!.length;
    }
  }
  if (i < text.length) out.push(text.slice(i));
  return out;
}

export class LineChunker {
  private readonly coalesceMs: number;
  private readonly coalesceChars: number;
  private readonly partialHoldMs: number;
  private readonly maxFragment: number;
  private readonly chunkMax: number;
  private readonly timers: Timers;

  private readonly partial: Record<OutputStream, string> = { stdout: '', stderr: '' };
  private readonly holdTimer: Record<OutputStream, unknown> = { stdout: null, stderr: null };
  private ready: Ready[] = [];
  private readyChars = 0;
  private windowTimer: unknown = null;

  constructor(
    private readonly sink: PieceSink,
    options: LineChunkerOptions = {},
  ) {
    this.coalesceMs = options.coalesceMs ?? DEFAULT_COALESCE_MS;
    this.coalesceChars = options.coalesceChars ?? DEFAULT_COALESCE_CHARS;
    this.partialHoldMs = options.partialHoldMs ?? DEFAULT_PARTIAL_HOLD_MS;
    this.chunkMax = Math.max(2, Math.min(options.chunkMax ?? LIMITS.chunkDataMax, LIMITS.chunkDataMax));
    this.maxFragment = Math.max(2, Math.min(options.maxFragment ?? DEFAULT_MAX_FRAGMENT, this.chunkMax));
    this.timers = options.timers ?? realTimers;
  }

  /** Characters read but not emitted yet (held partial lines included). */
  get pendingChars(): number {
    return this.readyChars + this.partial.stdout.length + this.partial.stderr.length;
  }

  write(stream: OutputStream, text: string): void {
    if (text.length === 0) return;
    let held: string;
    let cut = false;
    // only the new text can hold a newline: the partial line before it has none
    const nl = text.lastIndexOf('\n');
    if (nl >= 0) {
      this.addReady(stream, this.partial[stream] + text.slice(0, nl + 1));
      held = text.slice(nl + 1);
      cut = true;
    } else {
      held = this.partial[stream] + text;
    }
    if (held.length >= this.maxFragment) {
      const pieces = splitText(held, this.maxFragment);
      const last = pieces[pieces.length - 1]!;
      const whole = last.length === this.maxFragment ? pieces : pieces.slice(0, -1);
      for (const p of whole) this.addReady(stream, p);
      held = whole === pieces ? '' : last;
      cut = true;
    }
    this.partial[stream] = held;
    // the hold runs from the first character of the partial line now held
    if (cut || held.length === 0) this.clearHold(stream);
    if (held.length > 0 && this.holdTimer[stream] === null) {
      this.holdTimer[stream] = this.timers.setTimeout(() => {
        this.holdTimer[stream] = null;
        this.releasePartial(stream);
        this.schedule();
      }, this.partialHoldMs);
    }
    this.schedule();
  }

  /** The stream ended: its partial line is complete as it is. */
  end(stream: OutputStream): void {
    this.releasePartial(stream);
    this.schedule();
  }

  /** Emit everything now, held partial lines included (the process is done; a finish never waits on a timer). */
  flush(): void {
    this.releasePartial('stdout');
    this.releasePartial('stderr');
    this.cancelWindow();
    this.emitReady();
  }

  /** Drop timers (the execution is over). */
  dispose(): void {
    this.clearHold('stdout');
    this.clearHold('stderr');
    this.cancelWindow();
  }

  private releasePartial(stream: OutputStream): void {
    this.clearHold(stream);
    const p = this.partial[stream];
    if (p.length === 0) return;
    this.partial[stream] = '';
    this.addReady(stream, p);
  }

  private clearHold(stream: OutputStream): void {
    if (this.holdTimer[stream] !== null) this.timers.clearTimeout(this.holdTimer[stream]);
    this.holdTimer[stream] = null;
  }

  private addReady(stream: OutputStream, text: string): void {
    if (text.length === 0) return;
    const last = this.ready[this.ready.length - 1];
    if (last && last.stream === stream) last.parts.push(text);
    else this.ready.push({ stream, parts: [text] });
    this.readyChars += text.length;
  }

  private schedule(): void {
    if (this.readyChars === 0) return;
    if (this.windowTimer === null) {
      // leading edge: nothing was sent for a while, send at once
      this.emitReady();
      this.openWindow();
    } else if (this.readyChars >= this.coalesceChars) {
      this.emitReady();
    }
  }

  private openWindow(): void {
    this.windowTimer = this.timers.setTimeout(() => {
      this.windowTimer = null;
      if (this.readyChars === 0) return; // quiet window: the burst is over
      this.emitReady();
      this.openWindow();
    }, this.coalesceMs);
  }

  private cancelWindow(): void {
    if (this.windowTimer !== null) this.timers.clearTimeout(this.windowTimer);
    this.windowTimer = null;
  }

  private emitReady(): void {
    const ready = this.ready;
    if (ready.length === 0) return;
    this.ready = [];
    this.readyChars = 0;
    for (const r of ready) {
      const text = r.parts.length === 1 ? r.parts[0]! : r.parts.join('');
      for (const data of splitAtLines(text, this.chunkMax)) this.sink(r.stream, data);
    }
  }
}
