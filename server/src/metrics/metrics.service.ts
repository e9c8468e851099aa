import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import {
  ErrorCode,
  METRICS_LIMITS,
  type ContainerMetricsPoint,
  type ContainerMetricsResponse,
  type HostMetricsPoint,
  type MachineMetricsResponse,
  type MetricsQuerySchema,
  type MetricsResolution,
  type MetricsSample,
  type ProjectCpuResponse,
} from '@kapitan/shared';
import { Between, DataSource, In, Repository } from 'typeorm';
import type { z } from 'zod';
import { ApiException, notFound } from '../common/api-exception';
import { DomainEventsService } from '../common/events.service';
import { APP_CONFIG, type AppConfig, type MetricsRetention } from '../config/config';
import { ContainerStateService } from '../containers/container-state.service';
import { MachinesService } from '../machines/machines.service';
import { ProjectsService } from '../projects/projects.service';
import { ContainerMetricsEntity, HostMetricsEntity } from './metrics.entity';

type Query = z.output<typeof MetricsQuerySchema>;

const MINUTE = 60_000;
const HOUR = 3_600_000;
/** Bucket width of each coarser resolution, and the one it is averaged from. */
const ROLLUPS = [
  { to: '1m', from: 'raw', width: MINUTE },
  { to: '1h', from: '1m', width: HOUR },
] as const satisfies readonly { to: MetricsResolution; from: MetricsResolution; width: number }[];
/** How often each node rolls up and prunes (idempotent: every node may, the inserts ignore buckets already made). */
export const METRICS_MAINTAIN_MS = 60_000;

const HOST_VALUES = [
  'cpuPercent',
  'memoryUsedBytes',
  'memoryTotalBytes',
  'diskRootUsedBytes',
  'diskRootTotalBytes',
  'diskStateUsedBytes',
  'diskStateTotalBytes',
  'netRxBytesPerSec',
  'netTxBytesPerSec',
  'load1',
  'load5',
  'load15',
] as const;
const CONTAINER_VALUES = ['cpuPercent', 'memoryUsedBytes', 'memoryLimitBytes'] as const;

/**
 * Stores metrics samples, averages them into coarser buckets, prunes what is
 * older than each resolution's retention, and reads them back. Every write
 * is keyed by the machine bound to the reporting socket; container readings
 * are kept only for containers that machine reported (so an agent cannot
 * file numbers under another machine's container). Time is the server's:
 * an agent's clock cannot place a sample outside the retention windows.
 */
@Injectable()
export class MetricsService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(MetricsService.name);
  /** When each machine's last raw sample was stored on this node (an agent's socket is on one node at a time). */
  private readonly lastStored = new Map<string, number>();
  /** Per table and resolution, up to when this node has rolled up (buckets before it are made). */
  private readonly rolledUntil = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private maintaining: Promise<void> | null = null;

  constructor(
    @InjectRepository(HostMetricsEntity) private readonly hosts: Repository<HostMetricsEntity>,
    @InjectRepository(ContainerMetricsEntity) private readonly containers: Repository<ContainerMetricsEntity>,
    @InjectDataSource() private readonly db: DataSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly containerState: ContainerStateService,
    private readonly machines: MachinesService,
    private readonly projects: ProjectsService,
    private readonly events: DomainEventsService,
  ) {}

  onModuleInit(): void {
    this.timer = setInterval(() => void this.maintain().catch((err: unknown) => this.logger.warn({ err: String(err) }, 'metrics maintenance failed')), METRICS_MAINTAIN_MS);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    if (this.timer) clearInterval(this.timer);
  }

  // ---------------------------------------------------------------- agent

  /**
   * A sample from the agent of `machineId`: pushed to the machine's watchers
   * as it is, stored when the last stored one is a raw interval old. Returns
   * whether it was stored.
   */
  async record(machineId: string, projectId: string, sample: MetricsSample, now = Date.now()): Promise<boolean> {
    const at = new Date(now).toISOString();
    this.events.publish('metrics.sample', {
      projectId,
      machineId,
      host: { at, ...sample.host },
      containers: sample.containers.map((c) => ({ at, ...c })),
    });
    const last = this.lastStored.get(machineId);
    // 0.8: an agent's 10 s timer that fires a little early must not skip a row
    if (last !== undefined && now - last < this.config.metrics.rawIntervalMs * 0.8 && now >= last) return false;

    const known = await this.containerState.knownIds(
      machineId,
      sample.containers.map((c) => c.containerId),
    );
    const foreign = sample.containers.filter((c) => !known.has(c.containerId));
    if (foreign.length > 0) {
      this.logger.warn({ machineId, containerIds: foreign.slice(0, 5).map((c) => c.containerId), count: foreign.length }, 'metrics of containers this machine has not reported: not stored');
    }
    await this.db.transaction(async (m) => {
      await m.insert(HostMetricsEntity, { machineId, resolution: 'raw', bucketAt: now, ...sample.host });
      const rows = sample.containers.filter((c) => known.has(c.containerId)).map((c) => ({ machineId, resolution: 'raw' as const, bucketAt: now, ...c }));
      if (rows.length > 0) await m.insert(ContainerMetricsEntity, rows);
    });
    this.lastStored.set(machineId, now);
    this.events.publish('metrics.host', {
      projectId,
      machineId,
      at,
      cpuPercent: sample.host.cpuPercent,
      memoryUsedBytes: sample.host.memoryUsedBytes,
      memoryTotalBytes: sample.host.memoryTotalBytes,
    });
    return true;
  }

  forget(machineId: string): void {
    this.lastStored.delete(machineId);
  }

  // ---------------------------------------------------------------- rollup and retention

  /** Average complete buckets into the coarser resolutions, then delete what each resolution no longer keeps. */
  maintain(now = Date.now()): Promise<void> {
    // one run at a time on a node: the timer and a test may both ask
    const run = (this.maintaining ?? Promise.resolve()).then(() => this.maintainOnce(now));
    this.maintaining = run.catch(() => undefined);
    return run;
  }

  private async maintainOnce(now: number): Promise<void> {
    for (const table of ['host_metrics', 'container_metrics'] as const) {
      const retention = table === 'host_metrics' ? this.config.metrics.retentionMs.host : this.config.metrics.retentionMs.container;
      for (const r of ROLLUPS) await this.rollup(table, r, retention, now);
      for (const resolution of ['raw', '1m', '1h'] as const) {
        await this.db.query(`DELETE FROM ${table} WHERE resolution = ? AND bucketAt < ?`, [resolution, now - retention[resolution]]);
      }
    }
  }

  private async rollup(table: 'host_metrics' | 'container_metrics', r: (typeof ROLLUPS)[number], retention: MetricsRetention, now: number): Promise<void> {
    // A bucket is made once it is over and late samples had time to land (two raw intervals, or one minute bucket for hours).
    const lag = r.from === 'raw' ? 2 * this.config.metrics.rawIntervalMs : MINUTE + 2 * this.config.metrics.rawIntervalMs;
    const until = floor(now - lag, r.width);
    const key = `${table}:${r.to}`;
    let since = this.rolledUntil.get(key);
    if (since === undefined) {
      const [row] = (await this.db.query(`SELECT MAX(bucketAt) AS m FROM ${table} WHERE resolution = ?`, [r.to])) as { m: string | number | null }[];
      since = row?.m != null ? Number(row.m) + r.width : floor(now - retention[r.from], r.width);
    }
    if (since >= until) return;
    const values = table === 'host_metrics' ? HOST_VALUES : CONTAINER_VALUES;
    const keys = table === 'host_metrics' ? ['machineId'] : ['machineId', 'containerId'];
    const bucket = `bucketAt - (bucketAt % ${r.width})`;
    const ignore = this.db.options.type === 'mysql' || this.db.options.type === 'mariadb' ? 'INSERT IGNORE' : 'INSERT OR IGNORE';
    await this.db.query(
      `${ignore} INTO ${table} (${[...keys, 'resolution', 'bucketAt', ...values].join(', ')}) ` +
        `SELECT ${keys.join(', ')}, ?, ${bucket}, ${values.map((v) => `AVG(${v})`).join(', ')} FROM ${table} ` +
        `WHERE resolution = ? AND bucketAt >= ? AND bucketAt < ? GROUP BY ${keys.join(', ')}, ${bucket}`,
      [r.to, r.from, since, until],
    );
    this.rolledUntil.set(key, until);
  }

  // ---------------------------------------------------------------- REST

  async machineMetrics(userId: string, machineId: string, q: Query, now = Date.now()): Promise<MachineMetricsResponse> {
    await this.visibleMachine(userId, machineId);
    const w = this.window(q, this.config.metrics.retentionMs.host, now);
    const rows = await this.hosts.find({
      where: { machineId, resolution: w.resolution, bucketAt: Between(w.from, w.to) },
      order: { bucketAt: 'DESC' },
      take: METRICS_LIMITS.pointsMax,
    });
    return { machineId, resolution: w.resolution, from: iso(w.from), to: iso(w.to), points: rows.reverse().map(toHostPoint) };
  }

  async containerMetrics(userId: string, machineId: string, q: Query, now = Date.now()): Promise<ContainerMetricsResponse> {
    await this.visibleMachine(userId, machineId);
    const w = this.window(q, this.config.metrics.retentionMs.container, now);
    const rows = await this.containers.find({
      where: { machineId, resolution: w.resolution, bucketAt: Between(w.from, w.to), ...(q.containerId ? { containerId: q.containerId } : {}) },
      order: { bucketAt: 'DESC' },
      take: METRICS_LIMITS.pointsMax * (q.containerId ? 1 : 20),
    });
    const series = new Map<string, ContainerMetricsPoint[]>();
    for (const r of rows.reverse()) {
      const points = series.get(r.containerId) ?? [];
      points.push({ at: iso(r.bucketAt), cpuPercent: r.cpuPercent, memoryUsedBytes: r.memoryUsedBytes, memoryLimitBytes: r.memoryLimitBytes });
      series.set(r.containerId, points);
    }
    return {
      machineId,
      resolution: w.resolution,
      from: iso(w.from),
      to: iso(w.to),
      series: [...series].map(([containerId, points]) => ({ containerId, points: points.slice(-METRICS_LIMITS.pointsMax) })),
    };
  }

  /** Every machine's host CPU over the window: the machine list's sparklines, in one read. */
  async projectCpu(userId: string, projectId: string, q: Query, now = Date.now()): Promise<ProjectCpuResponse> {
    await this.projects.requireRole(userId, projectId, 'viewer');
    const w = this.window(q, this.config.metrics.retentionMs.host, now);
    const ids = (await this.machines.resolveTargets(projectId, { all: true })).map((m) => m.id);
    const rows = ids.length
      ? await this.hosts.find({
          select: { machineId: true, bucketAt: true, cpuPercent: true },
          where: { machineId: In(ids), resolution: w.resolution, bucketAt: Between(w.from, w.to) },
          order: { bucketAt: 'ASC' },
          take: METRICS_LIMITS.pointsMax * 20,
        })
      : [];
    const series = new Map<string, { at: string; cpuPercent: number | null }[]>(ids.map((id) => [id, []]));
    for (const r of rows) series.get(r.machineId)?.push({ at: iso(r.bucketAt), cpuPercent: r.cpuPercent });
    return { resolution: w.resolution, from: iso(w.from), to: iso(w.to), series: [...series].map(([machineId, points]) => ({ machineId, points })) };
  }

  /**
   * The range and resolution to read. `auto` picks the finest resolution that
   * still holds `from` and answers in at most `pointsMax` points; an explicit
   * one that would answer more is refused.
   */
  private window(q: Query, retention: MetricsRetention, now: number): { from: number; to: number; resolution: MetricsResolution } {
    const to = q.to ? Date.parse(q.to) : now;
    const from = q.from ? Date.parse(q.from) : to - HOUR;
    const step: Record<MetricsResolution, number> = { raw: this.config.metrics.rawIntervalMs, '1m': MINUTE, '1h': HOUR };
    const fits = (r: MetricsResolution) => (to - from) / step[r] <= METRICS_LIMITS.pointsMax;
    if (q.resolution !== 'auto') {
      if (!fits(q.resolution)) {
        throw new ApiException(400, ErrorCode.validation, `resolution: ${q.resolution} over this range is more than ${METRICS_LIMITS.pointsMax} points; ask for a coarser one or a shorter range`, [
          { path: 'resolution', message: 'too many points for this range' },
        ]);
      }
      return { from, to, resolution: q.resolution };
    }
    const resolution = (['raw', '1m'] as const).find((r) => fits(r) && from >= now - retention[r]) ?? '1h';
    return { from, to, resolution };
  }

  private async visibleMachine(userId: string, machineId: string): Promise<string> {
    const projectId = await this.machines.projectOf(machineId);
    if (!projectId) throw notFound('machine');
    try {
      await this.projects.requireRole(userId, projectId, 'viewer');
    } catch (err) {
      // not a member: the machine does not exist for them (threat model T8)
      if ((err as { getStatus?: () => number }).getStatus?.() === 404) throw notFound('machine');
      throw err;
    }
    return projectId;
  }

  /** For the live subscription: the machine's project once the user may view it, else null. */
  async projectIfVisible(userId: string, machineId: string): Promise<string | null> {
    try {
      return await this.visibleMachine(userId, machineId);
    } catch {
      return null;
    }
  }
}

const floor = (t: number, width: number) => t - (((t % width) + width) % width);
const iso = (t: number) => new Date(t).toISOString();

function toHostPoint(r: HostMetricsEntity): HostMetricsPoint {
  return {
    at: iso(r.bucketAt),
    cpuPercent: r.cpuPercent,
    memoryUsedBytes: r.memoryUsedBytes,
    memoryTotalBytes: r.memoryTotalBytes,
    diskRootUsedBytes: r.diskRootUsedBytes,
    diskRootTotalBytes: r.diskRootTotalBytes,
    diskStateUsedBytes: r.diskStateUsedBytes,
    diskStateTotalBytes: r.diskStateTotalBytes,
    netRxBytesPerSec: r.netRxBytesPerSec,
    netTxBytesPerSec: r.netTxBytesPerSec,
    load1: r.load1,
    load5: r.load5,
    load15: r.load15,
  };
}
