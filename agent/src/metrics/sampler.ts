/**
 * Samples the host and its containers and sends each sample to the server:
 * every `idleIntervalMs`, or at the watched interval while a `metrics:watch`
 * lease runs (someone has the machine's page open). One sample at a time,
 * start to start, so a slow engine stretches the interval instead of piling
 * requests up. Lossy by design: a sample the server did not take is not
 * resent, and nothing is read while the agent is not connected.
 */
import { AgentEvents, MetricsSampleSchema, type MetricsSample, type MetricsWatch } from '@kapitan/shared';
import type Dockerode from 'dockerode';
import { silentLogger, type Logger } from '../logger';
import type { ServerLink } from '../containers/supervisor';
import { ContainerStatsReader } from './containers';
import type { HostReader } from './host';

export interface MetricsSamplerOptions {
  link: ServerLink;
  host: HostReader;
  /** The engine, when the supervisor reaches one; null: a host-only sample. */
  docker: () => Dockerode | null;
  idleIntervalMs: number;
  logger?: Logger;
}

export class MetricsSampler {
  private readonly logger: Logger;
  private readonly containers = new ContainerStatsReader();
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private stopped = true;
  private fastMs = 0;
  private leaseUntil = 0;
  private lastStart = 0;
  private sent = 0;

  constructor(private readonly options: MetricsSamplerOptions) {
    this.logger = options.logger ?? silentLogger;
  }

  /** Samples sent so far (tests, logs). */
  get count(): number {
    return this.sent;
  }

  /** The interval in force now. */
  get intervalMs(): number {
    return Date.now() < this.leaseUntil ? Math.min(this.fastMs, this.options.idleIntervalMs) : this.options.idleIntervalMs;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Someone watches: sample at `intervalMs` until the lease runs out without renewal; the first fast sample comes at once. */
  watch(p: MetricsWatch): void {
    const wasFast = Date.now() < this.leaseUntil;
    this.fastMs = p.intervalMs;
    this.leaseUntil = Date.now() + p.leaseMs;
    if (!wasFast && !this.running && !this.stopped) this.schedule(Math.max(0, this.lastStart + this.intervalMs - Date.now()));
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), delayMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    this.timer = null;
    this.running = true;
    this.lastStart = Date.now();
    try {
      if (this.options.link.ready) await this.sampleAndSend();
    } catch (err) {
      this.logger.debug('metrics sample not sent', { error: String(err) });
    } finally {
      this.running = false;
      this.schedule(Math.max(0, this.lastStart + this.intervalMs - Date.now()));
    }
  }

  private async sampleAndSend(): Promise<void> {
    const docker = this.options.docker();
    const [host, containers] = await Promise.all([
      this.options.host.read(),
      docker ? this.containers.read(docker).catch(() => []) : Promise.resolve([]),
    ]);
    const sample: MetricsSample = { at: new Date().toISOString(), host, containers };
    // the readers clamp, so this only catches a reader's bug; the server would refuse it anyway
    const checked = MetricsSampleSchema.safeParse(sample);
    if (!checked.success) {
      this.logger.warn('metrics sample invalid, not sent', { error: checked.error.message.slice(0, 500) });
      return;
    }
    const ack = await this.options.link.request(AgentEvents.metricsSample, checked.data, Math.max(5000, this.intervalMs * 2));
    if (ack && typeof ack === 'object' && (ack as { ok?: unknown }).ok === true) this.sent++;
  }
}
