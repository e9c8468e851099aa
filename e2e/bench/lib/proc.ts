/** Memory and CPU of a process from /proc (Linux), sampled from outside. */
import fs from 'node:fs';
import os from 'node:os';

const CLK_TCK = 100; // USER_HZ on every Linux we run on
export const PAGE = 4096;

/** VmRSS and VmHWM in bytes, or null if the process is gone. */
export function readStatus(pid: number): { rss: number; hwm: number; anon: number; file: number } | null {
  try {
    const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
    // RssFile is mostly the executable's own pages (Node's binary), RssAnon what the process allocated.
    return { rss: kb('VmRSS'), hwm: kb('VmHWM'), anon: kb('RssAnon'), file: kb('RssFile') };
  } catch {
    return null;
  }
}

/** User+system CPU seconds used by the process so far (not its children). */
export function cpuSeconds(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state): utime is field 14, stime field 15
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

/** Samples RSS (and CPU) of a process every `intervalMs` until stopped. */
export class ProcSampler {
  readonly samples: { at: number; rss: number }[] = [];
  private timer: NodeJS.Timeout;
  private readonly cpu0: number;
  private readonly t0 = Date.now();

  constructor(
    readonly pid: number,
    intervalMs = 500,
  ) {
    this.cpu0 = cpuSeconds(pid) ?? 0;
    const sample = (): void => {
      const s = readStatus(pid);
      if (s) this.samples.push({ at: Date.now(), rss: s.rss });
    };
    sample();
    this.timer = setInterval(sample, intervalMs);
  }

  /** Stops sampling; CPU is the share of one core over the window (100 = one core busy). */
  stop(): { rssMean: number; rssMax: number; rssLast: number; cpuPercent: number; seconds: number } {
    clearInterval(this.timer);
    const seconds = (Date.now() - this.t0) / 1000;
    const cpu = (cpuSeconds(this.pid) ?? this.cpu0) - this.cpu0;
    const rss = this.samples.map((s) => s.rss);
    return {
      rssMean: rss.length ? rss.reduce((a, b) => a + b, 0) / rss.length : NaN,
      rssMax: rss.length ? Math.max(...rss) : NaN,
      rssLast: rss.length ? rss[rss.length - 1]! : NaN,
      cpuPercent: seconds > 0 ? (cpu / seconds) * 100 : NaN,
      seconds,
    };
  }
}

/** The machine the numbers come from. */
export function machineInfo(): Record<string, string | number> {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    cpuModel = /^model name\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpuModel;
  } catch {
    // not Linux
  }
  return {
    cpus: os.availableParallelism(),
    cpuModel,
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    kernel: os.release(),
    platform: `${process.platform}-${process.arch}`,
  };
}
