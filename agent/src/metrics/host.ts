/**
 * Host readings from /proc and statfs, the way `top`, `free` and `df` take
 * them. CPU and network are counters: a rate needs the previous reading, so
 * the reader keeps it, and the first reading has them null.
 */
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import { METRICS_LIMITS, type HostMetrics } from '@kapitan/shared';

interface Counters {
  at: number;
  cpu: { busy: number; total: number } | null;
  net: { rx: number; tx: number } | null;
}

export interface HostReaderOptions {
  /** The agent's state directory: its filesystem is reported beside `/`. */
  stateDir: string;
  /** Where /proc is (tests point it at a fixture). */
  procDir?: string;
}

export class HostReader {
  private previous: Counters | null = null;
  private readonly proc: string;

  constructor(private readonly options: HostReaderOptions) {
    this.proc = options.procDir ?? '/proc';
  }

  async read(now = Date.now()): Promise<HostMetrics> {
    const [cpu, net, memory, root, state] = await Promise.all([
      this.cpuCounters(),
      this.netCounters(),
      this.memory(),
      disk('/'),
      disk(this.options.stateDir),
    ]);
    const prev = this.previous;
    this.previous = { at: now, cpu, net };
    const seconds = prev ? (now - prev.at) / 1000 : 0;
    const cpuPercent = prev?.cpu && cpu && cpu.total > prev.cpu.total ? clamp((100 * (cpu.busy - prev.cpu.busy)) / (cpu.total - prev.cpu.total), 100) : null;
    const rate = (a: number | undefined, b: number | undefined) =>
      // a counter that went back (an interface gone, a wrap) says nothing about this interval
      a !== undefined && b !== undefined && seconds > 0 && b >= a ? clamp((b - a) / seconds, METRICS_LIMITS.rateMax) : null;
    const [load1, load5, load15] = os.loadavg().map((l) => clamp(l, METRICS_LIMITS.loadMax));
    return {
      cpuPercent,
      memoryUsedBytes: memory.used,
      memoryTotalBytes: memory.total,
      diskRootUsedBytes: root.used,
      diskRootTotalBytes: root.total,
      diskStateUsedBytes: state.used,
      diskStateTotalBytes: state.total,
      netRxBytesPerSec: rate(prev?.net?.rx, net?.rx),
      netTxBytesPerSec: rate(prev?.net?.tx, net?.tx),
      load1: load1!,
      load5: load5!,
      load15: load15!,
    };
  }

  /** The `cpu` line of /proc/stat: busy and total jiffies since boot (idle and iowait are not busy). */
  private async cpuCounters(): Promise<{ busy: number; total: number } | null> {
    const text = await fsp.readFile(`${this.proc}/stat`, 'utf8').catch(() => null);
    const line = text?.split('\n').find((l) => l.startsWith('cpu '));
    if (!line) return osCpuCounters();
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
    if (f.length < 4 || f.some((n) => !Number.isFinite(n))) return osCpuCounters();
    const total = f.reduce((a, b) => a + b, 0);
    const idle = f[3]! + (f[4] ?? 0);
    return { busy: total - idle, total };
  }

  /** Bytes received and sent by every interface but loopback, from /proc/net/dev. */
  private async netCounters(): Promise<{ rx: number; tx: number } | null> {
    const text = await fsp.readFile(`${this.proc}/net/dev`, 'utf8').catch(() => null);
    if (!text) return null;
    let rx = 0;
    let tx = 0;
    for (const line of text.split('\n').slice(2)) {
      const [name, rest] = line.split(':');
      if (!rest || name!.trim() === 'lo') continue;
      const f = rest.trim().split(/\s+/).map(Number);
      if (Number.isFinite(f[0]) && Number.isFinite(f[8])) {
        rx += f[0]!;
        tx += f[8]!;
      }
    }
    return { rx, tx };
  }

  /** Used is total minus MemAvailable (what `free` calls available: free plus reclaimable cache). */
  private async memory(): Promise<{ used: number; total: number }> {
    const text = await fsp.readFile(`${this.proc}/meminfo`, 'utf8').catch(() => null);
    const kb = (key: string) => {
      const m = text?.match(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm'));
      return m ? Number(m[1]) * 1024 : null;
    };
    const total = kb('MemTotal') ?? os.totalmem();
    const available = kb('MemAvailable') ?? os.freemem();
    return { total, used: Math.max(0, Math.min(total, total - available)) };
  }
}

/** Used and total bytes of the filesystem holding `dir`, as `df` counts them (used = blocks − free). */
async function disk(dir: string): Promise<{ used: number; total: number }> {
  try {
    const s = await fsp.statfs(dir);
    const total = s.blocks * s.bsize;
    const used = Math.max(0, (s.blocks - s.bfree) * s.bsize);
    return { total: Math.min(total, METRICS_LIMITS.bytesMax), used: Math.min(used, total, METRICS_LIMITS.bytesMax) };
  } catch {
    return { total: 0, used: 0 };
  }
}

function osCpuCounters(): { busy: number; total: number } | null {
  const cpus = os.cpus();
  if (cpus.length === 0) return null;
  let busy = 0;
  let total = 0;
  for (const c of cpus) {
    const t = c.times.user + c.times.nice + c.times.sys + c.times.irq + c.times.idle;
    total += t;
    busy += t - c.times.idle;
  }
  return { busy, total };
}

const clamp = (n: number, max: number) => (Number.isFinite(n) ? Math.min(max, Math.max(0, n)) : 0);
