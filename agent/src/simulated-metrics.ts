/**
 * Metrics for simulated agents: the agent's own MetricsSampler (its timing,
 * one sample at a time, its schema check and its ack handling) over a host
 * that is made up rather than read from /proc, and the simulated engine's
 * containers (SimulatedDockerEngine answers the one-shot stats).
 */
import type { HostMetrics } from '@kapitan/shared';
import type { ServerLink } from './containers/supervisor';
import type { Logger } from './logger';
import { HostReader } from './metrics/host';
import { MetricsSampler } from './metrics/sampler';
import type { SimulatedDockerEngine } from './simulated-docker';

const GiB = 1024 ** 3;

/** A steady, plausible host: the first reading has no rates (as a real first reading), later ones do. */
export class SimulatedHostReader extends HostReader {
  private readings = 0;

  constructor(private readonly seed = 0) {
    super({ stateDir: '/' });
  }

  override async read(): Promise<HostMetrics> {
    const first = this.readings++ === 0;
    const wobble = ((this.seed * 7 + this.readings * 13) % 20) / 2;
    return {
      cpuPercent: first ? null : 10 + wobble,
      memoryUsedBytes: 3 * GiB,
      memoryTotalBytes: 8 * GiB,
      diskRootUsedBytes: 20 * GiB,
      diskRootTotalBytes: 100 * GiB,
      diskStateUsedBytes: 20 * GiB,
      diskStateTotalBytes: 100 * GiB,
      netRxBytesPerSec: first ? null : 100_000 + wobble * 1000,
      netTxBytesPerSec: first ? null : 50_000 + wobble * 1000,
      load1: 0.5,
      load5: 0.4,
      load15: 0.3,
    };
  }
}

/** The agent's sampler for a simulated agent: made-up host, the simulated engine's containers (none without one). */
export function simulatedMetricsSampler(options: { link: ServerLink; engine: SimulatedDockerEngine | null; idleIntervalMs: number; seed?: number; logger?: Logger }): MetricsSampler {
  const engine = options.engine;
  return new MetricsSampler({
    link: options.link,
    host: new SimulatedHostReader(options.seed),
    docker: () => engine?.client ?? null,
    idleIntervalMs: options.idleIntervalMs,
    logger: options.logger,
  });
}
