/**
 * Read-only access to a Kapitan server's database, for what the benchmark
 * must check rather than assume: how many executions of a run are final,
 * whether the stored log of each execution is exactly what its agent
 * wrote (same chunks, sequence numbers 0..lastSeq without gaps or repeats,
 * same bytes), and which schedule occurrences and executions exist.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { REPO_ROOT } from '../../src/harness/paths';
import type { RunRecord } from './fleet-protocol';
import { countLines } from './output';

const FINAL = `('succeeded','failed','cancelled','timed_out','lost','expired')`;

type Target = { kind: 'mysql'; url: string } | { kind: 'sqlite'; file: string };

interface SqliteDb {
  prepare(sql: string): { all(...params: unknown[]): unknown[]; get(...params: unknown[]): unknown; iterate(...params: unknown[]): IterableIterator<unknown> };
  close(): void;
}

export interface Verification {
  executions: number;
  identical: number;
  /** Chunks the agents wrote that are not stored. */
  missingChunks: number;
  /** Stored chunks beyond what the agents wrote (a doubled chunk would show here or as a content mismatch). */
  extraChunks: number;
  /** Executions whose stored bytes differ from what was written. */
  contentMismatches: number;
  linesWritten: number;
  linesStored: number;
  firstProblem?: string;
}

/** A schedule occurrence as stored; times in epoch ms. */
export interface OccurrenceRow {
  id: string;
  scheduleId: string;
  fireAtMs: number;
  status: string;
  runId: string | null;
  /** When the row was inserted: the claim. */
  claimedMs: number;
  /** When its executions were created (same transaction); null while not fired. */
  firedMs: number | null;
}

export interface ExecutionRow {
  id: string;
  runId: string;
  machineId: string;
  createdMs: number;
}

/**
 * A DATETIME(3) as the drivers hand it back: a Date from mysql2 (the pool
 * reads it as UTC, as the server writes it), the text TypeORM wrote from
 * SQLite ('YYYY-MM-DD HH:MM:SS.SSS', UTC).
 */
function epochMs(v: Date | string | null): number | null {
  if (v === null) return null;
  if (v instanceof Date) return v.getTime();
  return Date.parse(`${v.replace(' ', 'T')}${/Z|[+-]\d\d:\d\d$/.test(v) ? '' : 'Z'}`);
}

export class Store {
  private constructor(
    private readonly target: Target,
    private readonly pool: mysql.Pool | null,
    private readonly sqlite: SqliteDb | null,
  ) {}

  static async open(target: Target): Promise<Store> {
    if (target.kind === 'mysql') return new Store(target, mysql.createPool({ uri: target.url, connectionLimit: 2, timezone: 'Z' }), null);
    // The server's own driver (a dependency of server/, not hoisted).
    const Database = createRequire(path.join(REPO_ROOT, 'server/package.json'))('better-sqlite3') as new (file: string, options: { readonly: boolean; fileMustExist: boolean }) => SqliteDb;
    return new Store(target, null, new Database(target.file, { readonly: true, fileMustExist: true }));
  }

  private async query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    if (this.pool) return (await this.pool.query(sql, params))[0] as T[];
    return this.sqlite!.prepare(sql).all(...params) as T[];
  }

  /** A project's audit events, newest first, as stored (the audit bench's direct read). */
  async auditRows(projectId: string): Promise<Record<string, unknown>[]> {
    return this.query<Record<string, unknown>>('SELECT * FROM audit_events WHERE projectId = ? ORDER BY seq DESC', [projectId]);
  }

  /** Executions of a run in a final status. */
  async finishedCount(runId: string): Promise<number> {
    const [r] = await this.query<{ n: number | string }>(`SELECT COUNT(*) AS n FROM executions WHERE runId = ? AND status IN ${FINAL}`, [runId]);
    return Number(r?.n ?? 0);
  }

  async statusCounts(runId: string): Promise<Record<string, number>> {
    const rows = await this.query<{ status: string; n: number | string }>(`SELECT status, COUNT(*) AS n FROM executions WHERE runId = ? GROUP BY status`, [runId]);
    return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  }

  /** Stored metrics rows (every resolution), host and container. */
  async metricsRows(): Promise<{ host: number; containers: number }> {
    const [h] = await this.query<{ n: number | string }>(`SELECT COUNT(*) AS n FROM host_metrics`);
    const [c] = await this.query<{ n: number | string }>(`SELECT COUNT(*) AS n FROM container_metrics`);
    return { host: Number(h?.n ?? 0), containers: Number(c?.n ?? 0) };
  }

  async onlineMachines(): Promise<number> {
    const [r] = await this.query<{ n: number | string }>(`SELECT COUNT(*) AS n FROM machines WHERE status = 'online'`);
    return Number(r?.n ?? 0);
  }

  /** Container rows stored, and how many of them were restarted (restartCount > 0). */
  async containerRows(): Promise<{ rows: number; restarted: number; restarts: number }> {
    const [r] = await this.query<{ n: number | string; r: number | string | null; s: number | string | null }>(
      `SELECT COUNT(*) AS n, SUM(CASE WHEN restartCount > 0 THEN 1 ELSE 0 END) AS r, SUM(restartCount) AS s FROM containers`,
    );
    return { rows: Number(r?.n ?? 0), restarted: Number(r?.r ?? 0), restarts: Number(r?.s ?? 0) };
  }

  /** Raw metrics rows stored: host samples and container readings. */
  async rawMetricsRows(): Promise<{ host: number; containers: number }> {
    const [h] = await this.query<{ n: number | string }>(`SELECT COUNT(*) AS n FROM host_metrics WHERE resolution = 'raw'`);
    const [c] = await this.query<{ n: number | string }>(`SELECT COUNT(*) AS n FROM container_metrics WHERE resolution = 'raw'`);
    return { host: Number(h?.n ?? 0), containers: Number(c?.n ?? 0) };
  }

  /** Every occurrence of the project's schedules. */
  async occurrenceRows(projectId: string): Promise<OccurrenceRow[]> {
    const rows = await this.query<{ id: string; scheduleId: string; fireAt: Date | string; status: string; runId: string | null; createdAt: Date | string; firedAt: Date | string | null }>(
      'SELECT id, scheduleId, fireAt, status, runId, createdAt, firedAt FROM schedule_occurrences WHERE projectId = ?',
      [projectId],
    );
    return rows.map((r) => ({ id: r.id, scheduleId: r.scheduleId, fireAtMs: epochMs(r.fireAt)!, status: r.status, runId: r.runId, claimedMs: epochMs(r.createdAt)!, firedMs: epochMs(r.firedAt) }));
  }

  /** Every execution of the project, whoever started it. */
  async executionRows(projectId: string): Promise<ExecutionRow[]> {
    const rows = await this.query<{ id: string; runId: string; machineId: string; createdAt: Date | string }>('SELECT id, runId, machineId, createdAt FROM executions WHERE projectId = ?', [projectId]);
    return rows.map((r) => ({ id: r.id, runId: r.runId, machineId: r.machineId, createdMs: epochMs(r.createdAt)! }));
  }

  async chunkCount(executionIds: readonly string[]): Promise<number> {
    let n = 0;
    for (let i = 0; i < executionIds.length; i += 500) {
      const ids = executionIds.slice(i, i + 500);
      const [r] = await this.query<{ n: number | string }>(`SELECT COUNT(*) AS n FROM execution_chunks WHERE executionId IN (${ids.map(() => '?').join(',')})`, ids);
      n += Number(r?.n ?? 0);
    }
    return n;
  }

  /** Compares the stored log of every run record with what its agent wrote. */
  async verify(runs: readonly RunRecord[]): Promise<Verification> {
    const v: Verification = { executions: runs.length, identical: 0, missingChunks: 0, extraChunks: 0, contentMismatches: 0, linesWritten: 0, linesStored: 0 };
    const byId = new Map(runs.map((r) => [r.executionId, r]));
    const ids = [...byId.keys()];
    const per = Math.max(1, Math.min(200, Math.floor(50_000 / Math.max(1, Math.max(...runs.map((r) => r.chunks))))));
    for (let i = 0; i < ids.length; i += per) {
      const group = ids.slice(i, i + per);
      const seen = new Map<string, { hash: ReturnType<typeof createHash>; n: number; next: number; ordered: boolean; lines: number }>();
      const sql = `SELECT executionId, seq, data FROM execution_chunks WHERE executionId IN (${group.map(() => '?').join(',')}) ORDER BY executionId, seq`;
      const onRow = (row: { executionId: string; seq: number | string; data: string }): void => {
        let s = seen.get(row.executionId);
        if (!s) seen.set(row.executionId, (s = { hash: createHash('sha256'), n: 0, next: 0, ordered: true, lines: 0 }));
        if (Number(row.seq) !== s.next) s.ordered = false;
        s.next = Number(row.seq) + 1;
        s.n++;
        s.lines += countLines(row.data);
        s.hash.update(row.data);
      };
      if (this.pool) {
        const [rows] = await this.pool.query(sql, group);
        for (const row of rows as { executionId: string; seq: number; data: string }[]) onRow(row);
      } else {
        for (const row of this.sqlite!.prepare(sql).iterate(...group)) onRow(row as { executionId: string; seq: number; data: string });
      }
      for (const id of group) {
        const r = byId.get(id)!;
        const s = seen.get(id);
        const stored = s?.n ?? 0;
        v.linesWritten += r.lines;
        v.linesStored += s?.lines ?? 0;
        if (stored < r.chunks) v.missingChunks += r.chunks - stored;
        if (stored > r.chunks) v.extraChunks += stored - r.chunks;
        const hash = s ? s.hash.digest('hex') : createHash('sha256').digest('hex');
        const same = stored === r.chunks && (s?.ordered ?? true) && hash === r.sha256 && (s?.next ?? 0) - 1 === r.lastSeq;
        if (same) v.identical++;
        else {
          if (hash !== r.sha256) v.contentMismatches++;
          v.firstProblem ??= `execution ${id}: wrote ${r.chunks} chunks (lastSeq ${r.lastSeq}), stored ${stored}${s && !s.ordered ? ' with gaps' : ''}${hash !== r.sha256 ? ', content differs' : ''}`;
        }
      }
    }
    return v;
  }

  async close(): Promise<void> {
    await this.pool?.end();
    this.sqlite?.close();
  }
}
