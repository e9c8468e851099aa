import type { OutputChunk, OutputStream } from '@kapitan/shared';

const ESC = '\x1b';
export const SGR_RED = `${ESC}[31m`;
export const SGR_RESET = `${ESC}[0m`;
const SGR_DIM_YELLOW = `${ESC}[2;33m`;

/** A complete escape sequence: CSI, OSC (BEL or ST terminated), charset designation, or a two-byte escape. */
const ANSI_SEQUENCE = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()*+][0-9A-Za-z]|[@-Z\\-_])/g;
/** An escape sequence cut off at the end of a chunk (the rest comes in the next one). */
const INCOMPLETE_TAIL = /\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?|[()*+])?$/;
/** Control characters with no place in plain text (keeps \t and \n). */
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f]/g;
/** Longest tail held back waiting for the rest of a sequence. */
const MAX_CARRY = 512;

/** SGR resets inside stderr output: re-apply red after each so stderr stays red. */
const SGR_RESETS = /\x1b\[0?m/g;

export function stripAnsi(s: string): string {
  return s.replace(ANSI_SEQUENCE, '').replace(/\r\n/g, '\n').replace(CONTROL, '');
}

/**
 * Turns ordered output chunks into what the terminal writes (stderr in red) and
 * into plain text (escape sequences removed). Keeps per stream the end of an
 * escape sequence split across chunks, so neither the colour wrapping nor the
 * plain text cut one in half.
 */
export class LogFormatter {
  private readonly carry: Record<OutputStream, string> = { stdout: '', stderr: '' };

  format(chunks: readonly OutputChunk[]): { terminal: string; text: string } {
    let terminal = '';
    let text = '';
    for (const c of chunks) {
      let data = this.carry[c.stream] + c.data;
      this.carry[c.stream] = '';
      const tail = INCOMPLETE_TAIL.exec(data);
      if (tail && tail[0].length > 0 && tail[0].length <= MAX_CARRY) {
        this.carry[c.stream] = tail[0];
        data = data.slice(0, data.length - tail[0].length);
      }
      if (data === '') continue;
      terminal += c.stream === 'stderr' ? wrapStderr(data) : data;
      text += stripAnsi(data);
    }
    return { terminal, text };
  }

  /** A visible note where stored output is missing (never silently closed). */
  /** A line of Kapitan's own (never the source's output), dimmed. */
  note(text: string): { terminal: string; text: string } {
    const note = `[kapitan] ${text.replace(/[\x00-\x1f\x7f]/g, ' ')}`;
    return { terminal: `\n${SGR_DIM_YELLOW}${note}${SGR_RESET}\n`, text: `\n${note}\n` };
  }

  gap(fromSeq: number, toSeq: number): { terminal: string; text: string } {
    const n = toSeq - fromSeq + 1;
    const note = `[kapitan] ${n} output chunk${n === 1 ? '' : 's'} (#${fromSeq}${n > 1 ? `–${toSeq}` : ''}) missing here`;
    return { terminal: `\n${SGR_DIM_YELLOW}${note}${SGR_RESET}\n`, text: `\n${note}\n` };
  }
}

export function wrapStderr(data: string): string {
  return `${SGR_RED}${data.replace(SGR_RESETS, `${SGR_RESET}${SGR_RED}`)}${SGR_RESET}`;
}

/**
 * The last `maxLines` lines of plain text, for the hidden `<pre data-testid="log-text">`
 * that tests and assistive tools read instead of the terminal canvas.
 */
export class TextTail {
  private lines: string[] = [];
  private partial = '';
  private total = 0;

  constructor(private readonly maxLines = 2000) {}

  /** Lines seen so far (complete ones, plus the one being written). */
  get lineCount(): number {
    return this.total + (this.partial ? 1 : 0);
  }

  append(text: string): void {
    if (!text) return;
    const parts = text.split('\n');
    this.partial += parts[0];
    for (let i = 1; i < parts.length; i++) {
      this.lines.push(this.partial);
      this.total++;
      this.partial = parts[i]!;
    }
    // Trim in batches so appending stays cheap.
    if (this.lines.length > this.maxLines + 500) this.lines = this.lines.slice(-this.maxLines);
  }

  toString(): string {
    const keep = this.partial ? this.maxLines - 1 : this.maxLines;
    const lines = this.lines.length > keep ? this.lines.slice(-keep) : this.lines;
    const body = lines.join('\n');
    if (!this.partial) return lines.length ? `${body}\n` : '';
    return lines.length ? `${body}\n${this.partial}` : this.partial;
  }

  clear(): void {
    this.lines = [];
    this.partial = '';
    this.total = 0;
  }
}
