/**
 * Per-container CPU and memory from the engine's one-shot stats
 * (`stream: false, one-shot: true`): one request per running container per
 * sample, nothing left open between samples. CPU is a counter, so the
 * reader keeps each container's previous reading and the first one is null.
 */
import os from 'node:os';
import { METRICS_LIMITS, type ContainerMetrics } from '@kapitan/shared';
import type Dockerode from 'dockerode';

interface CpuReading {
  container: number;
  system: number;
}

/** The subset of the engine's stats answer this reader uses. */
interface EngineStats {
  cpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number; online_cpus?: number };
  memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number> };
}

export class ContainerStatsReader {
  private previous = new Map<string, CpuReading>();

  async read(docker: Dockerode): Promise<ContainerMetrics[]> {
    const running = await docker.listContainers({ filters: { status: ['running'] } });
    const ids = running
      .map((c) => c.Id)
      .sort()
      .slice(0, METRICS_LIMITS.containersPerSampleMax);
    const seen = new Map<string, CpuReading>();
    const out = await Promise.all(
      ids.map(async (id): Promise<ContainerMetrics | null> => {
        let s: EngineStats;
        try {
          s = (await docker.getContainer(id).stats({ stream: false, 'one-shot': true } as { stream: false })) as EngineStats;
        } catch {
          return null; // gone between the list and the stats: the next sample will not list it
        }
        const cpu = { container: s.cpu_stats?.cpu_usage?.total_usage ?? 0, system: s.cpu_stats?.system_cpu_usage ?? 0 };
        seen.set(id, cpu);
        const prev = this.previous.get(id);
        const cores = s.cpu_stats?.online_cpus || os.cpus().length || 1;
        // docker stats' formula: the container's share of the host's CPU time, times the cores
        const cpuPercent =
          prev && cpu.system > prev.system && cpu.container >= prev.container
            ? Math.min(METRICS_LIMITS.containerCpuPercentMax, ((cpu.container - prev.container) / (cpu.system - prev.system)) * cores * 100)
            : null;
        const m = s.memory_stats ?? {};
        // what `docker stats` shows: usage without the page cache it could drop (cgroup v2 inactive_file, v1 total_inactive_file)
        const cache = m.stats?.inactive_file ?? m.stats?.total_inactive_file ?? 0;
        const used = Math.max(0, Math.min(METRICS_LIMITS.bytesMax, Math.round((m.usage ?? 0) - cache)));
        // an unlimited container reports the host's memory as its limit
        const limit = m.limit && m.limit < os.totalmem() ? Math.min(METRICS_LIMITS.bytesMax, Math.round(m.limit)) : null;
        return { containerId: id, cpuPercent, memoryUsedBytes: used, memoryLimitBytes: limit };
      }),
    );
    this.previous = seen;
    return out.filter((c): c is ContainerMetrics => c !== null);
  }
}
