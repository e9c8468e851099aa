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
import { isDatabaseUnavailable } from '../common/exception.filter';
import { dialectOf, multiRow } from '../common/multi-row';
import { WriteBatcher } from '../common/write-batcher';
import { APP_CONFIG, type AppConfig, type MetricsRetention } from '../config/config';
import { ContainerStateService } from '../containers/container-state.service';
import { MachinesService } from '../machines/machines.service';
import { ProjectsService } from '../projects/projects.service';
import { ContainerMetricsEntity, HostMetricsEntity } from './metrics.entity';

type Query = z.output<typeof MetricsQuerySchema>;

/** A sample to store, under the machine bound to the socket it came on, at the server's time. */
interface PendingSample {
  machineId: string;
  sample: MetricsSample;
  now: number;
}

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
  private readonly writes = new WriteBatcher<PendingSample>((batch) => this.store(batch), {
    // A sample refused for what it carries must not fail every agent of its batch.
    isolate: (err) => !isDatabaseUnavailable(err),
  });
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

  async onModuleDestroy(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.writes.flush();
  }

  // ---------------------------------------------------------------- agent

  /**
   * A sample from the agent of `machineId`: pushed to the machine's watchers
   * as it is, stored when the last stored one is a raw interval old. Returns
   * whether it was stored; resolves once it is committed (its batch's).
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

    // Taken before the write: a second sample of the machine meanwhile is not stored twice. Given back if the write fails.
    this.lastStored.set(machineId, now);
    try {
      await this.writes.add({ machineId, sample, now });
    } catch (err) {
      if (this.lastStored.get(machineId) === now) {
        if (last === undefined) this.lastStored.delete(machineId);
        else this.lastStored.set(machineId, last);
      }
      throw err;
    }
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

  /**
   * The samples of a batch in two multi-row INSERTs (host, containers) after
   * one read of which containers their machines reported, instead of a read,
   * a transaction and two inserts per sample. No transaction around them:
   * every row stands alone, and "ignore" makes writing a sample again
   * (a batch's members written alone after it failed) store it once.
   */
  private async store(batch: PendingSample[]): Promise<void> {
    const known = await this.containerState.knownIdsOf([...new Set(batch.filter((b) => b.sample.containers.length).map((b) => b.machineId))]);
    const hostRows: unknown[][] = [];
    const containerRows: unknown[][] = [];
    for (const { machineId, sample, now } of batch) {
      hostRows.push([machineId, 'raw', now, ...HOST_VALUES.map((v) => sample.host[v])]);
      const mine = known.get(machineId);
      let foreign = 0;
      for (const c of sample.containers) {
        if (mine?.has(c.containerId)) containerRows.push([machineId, 'raw', now, c.containerId, ...CONTAINER_VALUES.map((v) => c[v])]);
        else foreign++;
      }
      if (foreign > 0) {
        const ids = sample.containers.filter((c) => !mine?.has(c.containerId)).slice(0, 5).map((c) => c.containerId);
        this.logger.warn({ machineId, containerIds: ids, count: foreign }, 'metrics of containers this machine has not reported: not stored');
      }
    }
    const ignore = dialectOf(this.db) === 'mysql' ? 'INSERT IGNORE' : 'INSERT OR IGNORE';
    const statements = [
      ...multiRow(`${ignore} INTO host_metrics (machineId, resolution, bucketAt, ${HOST_VALUES.join(', ')}) VALUES`, hostRows),
      ...multiRow(`${ignore} INTO container_metrics (machineId, resolution, bucketAt, containerId, ${CONTAINER_VALUES.join(', ')}) VALUES`, containerRows),
    ];
    for (const st of statements) await this.db.query(st.sql, st.params);
  }

  /** Batches written so far (for tests of the batching rules). */
  get batchesWritten(): number {
    return this.writes.batches;
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
