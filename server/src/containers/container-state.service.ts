import { Injectable, OnModuleDestroy } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import type { Container, ContainersChanged, ContainersSnapshot, DockerStatus, MachineContainer, MachineDockerStatus } from '@kapitan/shared';
import { DataSource, In, Repository } from 'typeorm';
import type { ColumnMetadata } from 'typeorm/metadata/ColumnMetadata';
import { notFound } from '../common/api-exception';
import { DomainEventsService } from '../common/events.service';
import { isDatabaseUnavailable } from '../common/exception.filter';
import { dialectOf, multiRow } from '../common/multi-row';
import { WriteBatcher } from '../common/write-batcher';
import { MachinesService } from '../machines/machines.service';
import { ProjectsService } from '../projects/projects.service';
import { ContainerEntity, DockerHostEntity } from './container.entity';
import { toContainerDto, toContainerRow, toDockerStatusDto } from './container.mapper';

/** One report's rows, all of one machine: the one bound to the reporting socket. */
interface StateWrite {
  machineId: string;
  projectId: string;
  rows: ContainerEntity[];
  removed: string[];
  /** A snapshot's last part (its id): what no part of that snapshot named is gone, and the machine's list goes live. */
  sweep: string | null;
}

/** Machines per DELETE of removals or sweeps (each a few bound values; a patch removes at most 100). */
const MACHINES_PER_DELETE = 200;
/** Machines per read-back of swept snapshots (about 20 rows each). */
const MACHINES_PER_READ = 500;

const chunks = <T>(list: T[], size: number): T[][] => Array.from({ length: Math.ceil(list.length / size) }, (_, i) => list.slice(i * size, (i + 1) * size));

/**
 * The containers of every machine as its agent last reported them: a
 * snapshot replaces (at its last part, what no part named is gone), a change
 * patches. Every write is keyed by the machine bound to the reporting
 * socket, so an agent can only write its own machine's rows (design
 * invariant 4).
 *
 * Reports of many agents are written together (WriteBatcher): one
 * multi-row upsert for every row of a batch, one DELETE for its removals,
 * one for its snapshot sweeps. A batch holds at most one report per
 * machine, so a machine's reports are written in the order they came and a
 * later patch is never overwritten by an earlier one. A report resolves
 * (and its ack goes out) once its batch committed, and goes live then, just
 * before its ack.
 */
@Injectable()
export class ContainerStateService implements OnModuleDestroy {
  private readonly writes = new WriteBatcher<StateWrite>((batch) => this.write(batch), {
    keyOf: (w) => w.machineId,
    // A statement refused for what one report carries must not fail every agent of its batch.
    isolate: (err) => !isDatabaseUnavailable(err),
  });
  private sql: { columns: ColumnMetadata[]; upsertHead: string; upsertTail: string; table: string; machineId: string; id: string; snapshotId: string } | null = null;

  constructor(
    @InjectRepository(ContainerEntity) private readonly containers: Repository<ContainerEntity>,
    @InjectRepository(DockerHostEntity) private readonly hosts: Repository<DockerHostEntity>,
    @InjectDataSource() private readonly db: DataSource,
    private readonly machines: MachinesService,
    private readonly projects: ProjectsService,
    private readonly events: DomainEventsService,
  ) {}

  async onModuleDestroy(): Promise<void> {
    await this.writes.flush();
  }

  /** Batches written so far (for tests of the batching rules). */
  get batchesWritten(): number {
    return this.writes.batches;
  }

  // ---------------------------------------------------------------- REST

  /** The machine's project, once the caller has `role` in it; 404 for a machine unknown or not visible. */
  async visibleMachine(userId: string, machineId: string, role: 'viewer' | 'operator'): Promise<string> {
    const projectId = await this.machines.projectOf(machineId);
    if (!projectId) throw notFound('machine');
    try {
      await this.projects.requireRole(userId, projectId, role);
    } catch (err) {
      // not a member: the machine does not exist for them (threat model T8)
      if ((err as { getStatus?: () => number }).getStatus?.() === 404) throw notFound('machine');
      throw err;
    }
    return projectId;
  }

  async list(userId: string, machineId: string): Promise<MachineContainer[]> {
    await this.visibleMachine(userId, machineId, 'viewer');
    const rows = await this.containers.find({ where: { machineId }, order: { name: 'ASC' } });
    return rows.map(toContainerDto);
  }

  async dockerStatus(userId: string, machineId: string): Promise<MachineDockerStatus> {
    await this.visibleMachine(userId, machineId, 'viewer');
    return toDockerStatusDto(machineId, await this.hosts.findOne({ where: { machineId } }));
  }

  /**
   * The containers each of these machines reported, as last stored (the
   * metrics feature stores readings only of those): one read for a batch of
   * samples, plain rows, no entities.
   */
  async knownIdsOf(machineIds: readonly string[]): Promise<Map<string, Set<string>>> {
    const known = new Map<string, Set<string>>(machineIds.map((m) => [m, new Set()]));
    const s = this.statements();
    for (const group of chunks([...machineIds], MACHINES_PER_READ)) {
      const rows = (await this.db.query(`SELECT ${s.machineId} AS m, ${s.id} AS c FROM ${s.table} WHERE ${s.machineId} IN (${group.map(() => '?').join(',')})`, group)) as { m: string; c: string }[];
      for (const r of rows) known.get(r.m)?.add(r.c);
    }
    return known;
  }

  /** Is this container on this machine, as last reported? */
  async has(machineId: string, containerId: string): Promise<boolean> {
    return (await this.containers.count({ where: { machineId, id: containerId } })) > 0;
  }

  // ---------------------------------------------------------------- agent reports

  async setStatus(machineId: string, projectId: string, s: DockerStatus): Promise<void> {
    const row = Object.assign(new DockerHostEntity(), { machineId, projectId, ...s, updatedAt: new Date() });
    await this.hosts.upsert(row, ['machineId']);
    this.events.publish('docker.status', { projectId, status: toDockerStatusDto(machineId, row) });
  }

  async snapshotPart(machineId: string, projectId: string, p: ContainersSnapshot): Promise<void> {
    await this.writes.add({ machineId, projectId, rows: this.rowsOf(machineId, projectId, p.containers, p.snapshotId), removed: [], sweep: p.last ? p.snapshotId : null });
  }

  async changed(machineId: string, projectId: string, p: ContainersChanged): Promise<void> {
    const rows = this.rowsOf(machineId, projectId, p.containers, null);
    await this.writes.add({ machineId, projectId, rows, removed: p.removed, sweep: null });
    // Live once stored: a container a dashboard shows is one REST can act on and whose logs it can follow.
    this.events.publish('containers.updated', { projectId, machineId, snapshot: false, containers: rows.map(toContainerDto), removed: p.removed });
  }

  private rowsOf(machineId: string, projectId: string, list: Container[], snapshotId: string | null): ContainerEntity[] {
    const now = new Date();
    // A patched row loses its snapshot mark; that is harmless, as the next snapshot marks every container it names.
    // A container named twice in one report is the later one (one row per key in a multi-row upsert).
    const rows = new Map<string, ContainerEntity>();
    for (const c of list) rows.set(c.id, toContainerRow(machineId, projectId, c, snapshotId, now));
    return [...rows.values()];
  }

  private statements(): NonNullable<ContainerStateService['sql']> {
    if (this.sql) return this.sql;
    const meta = this.containers.metadata;
    const q = (name: string) => this.db.driver.escape(name);
    const columns = meta.columns;
    const keys = meta.primaryColumns.map((c) => c.databaseName);
    const others = columns.filter((c) => !keys.includes(c.databaseName)).map((c) => q(c.databaseName));
    const table = q(meta.tableName);
    const upsertHead = `INSERT INTO ${table} (${columns.map((c) => q(c.databaseName)).join(', ')}) VALUES`;
    const upsertTail =
      dialectOf(this.db) === 'mysql'
        ? `ON DUPLICATE KEY UPDATE ${others.map((c) => `${c} = VALUES(${c})`).join(', ')}`
        : `ON CONFLICT (${keys.map(q).join(', ')}) DO UPDATE SET ${others.map((c) => `${c} = excluded.${c}`).join(', ')}`;
    this.sql = { columns, upsertHead, upsertTail, table, machineId: q('machineId'), id: q('id'), snapshotId: q('snapshotId') };
    return this.sql;
  }

  private async write(batch: StateWrite[]): Promise<void> {
    const s = this.statements();
    const driver = this.db.driver;
    const values = batch.flatMap((w) => w.rows.map((r) => s.columns.map((c) => driver.preparePersistentValue(c.getEntityValue(r), c))));
    for (const st of multiRow(s.upsertHead, values, s.upsertTail)) await this.db.query(st.sql, st.params);

    for (const group of chunks(batch.filter((w) => w.removed.length), MACHINES_PER_DELETE)) {
      const where = group.map((w) => `(${s.machineId} = ? AND ${s.id} IN (${w.removed.map(() => '?').join(',')}))`).join(' OR ');
      await this.db.query(`DELETE FROM ${s.table} WHERE ${where}`, group.flatMap((w) => [w.machineId, ...w.removed]));
    }

    const swept = batch.filter((w) => w.sweep !== null);
    if (!swept.length) return;
    for (const group of chunks(swept, MACHINES_PER_DELETE)) {
      const where = group.map(() => `(${s.machineId} = ? AND (${s.snapshotId} IS NULL OR ${s.snapshotId} <> ?))`).join(' OR ');
      await this.db.query(`DELETE FROM ${s.table} WHERE ${where}`, group.flatMap((w) => [w.machineId, w.sweep]));
    }
    // The whole list of a replaced machine goes live from what is stored (its earlier parts came in other reports).
    const held = new Map<string, ContainerEntity[]>(swept.map((w) => [w.machineId, []]));
    for (const group of chunks(swept, MACHINES_PER_READ)) {
      const rows = await this.containers.find({ where: { machineId: In(group.map((w) => w.machineId)) }, order: { machineId: 'ASC', name: 'ASC' } });
      for (const r of rows) held.get(r.machineId)?.push(r);
    }
    for (const w of swept) {
      this.events.publish('containers.updated', { projectId: w.projectId, machineId: w.machineId, snapshot: true, containers: held.get(w.machineId)!.map(toContainerDto), removed: [] });
    }
  }
}
