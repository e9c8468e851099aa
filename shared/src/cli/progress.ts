/**
 * A progress bar on stderr, so stdout stays the command's result (a JSON
 * document a pipeline can parse). On a terminal it redraws one line; in a CI
 * log (no TTY) it prints a line every tenth, never a wall of carriage returns.
 */
export interface ProgressSink {
  isTTY?: boolean;
  write(text: string): unknown;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(n: number): string {
  let i = 0;
  let v = n;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? Math.round(v) : v.toFixed(1)} ${UNITS[i]}`;
}

export class ProgressBar {
  private readonly startedAt = Date.now();
  private lastTenth = -1;
  private lastDraw = 0;

  constructor(
    private readonly label: string,
    private readonly total: number,
    private readonly out: ProgressSink,
    private readonly width = 30,
  ) {}

  update(done: number): void {
    const fraction = this.total > 0 ? Math.min(1, done / this.total) : 1;
    const elapsed = Math.max(0.001, (Date.now() - this.startedAt) / 1000);
    const line = `${this.label} ${this.bar(fraction)} ${(fraction * 100).toFixed(0).padStart(3)}% ${formatBytes(done)}/${formatBytes(this.total)} ${formatBytes(done / elapsed)}/s`;
    if (this.out.isTTY) {
      const now = Date.now();
      if (now - this.lastDraw < 100 && fraction < 1) return;
      this.lastDraw = now;
      this.out.write(`\r${line}\x1b[K`);
      return;
    }
    const tenth = Math.floor(fraction * 10);
    if (tenth === this.lastTenth) return;
    this.lastTenth = tenth;
    this.out.write(`${line}\n`);
  }

  finish(note = ''): void {
    if (this.out.isTTY) this.out.write(`${note ? ` ${note}` : ''}\n`);
    else if (note) this.out.write(`${this.label} ${note}\n`);
  }

  private bar(fraction: number): string {
    const full = Math.round(fraction * this.width);
    return `[${'#'.repeat(full)}${'.'.repeat(this.width - full)}]`;
  }
}
