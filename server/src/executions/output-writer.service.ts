import { Injectable, OnModuleDestroy } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { OutputChunk } from '@kapitan/shared';
import { DataSource } from 'typeorm';
import { inAppContext } from '../common/app-context';
import { lockConflict } from '../common/lock-conflict';

/** One chunk as it is inserted: executionId, seq, stream, data. */
type Row = [string, number, string, string];

interface Pending {
  rows: Row[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * After a flush, what arrives within this long joins one batch (trailing edge). A write to an idle
 * writer is flushed at once (leading edge): a lone chunk, or a finish, never waits on the timer.
 */
const COALESCE_MS = 15;
/** Flush at once when this many chunks wait. */
const FLUSH_AT_ROWS = 2000;
/** One INSERT carries at most this many rows / bytes (MySQL's max_allowed_packet, SQLite's variable limit). */
const ROWS_PER_STATEMENT = 500;
const BYTES_PER_STATEMENT = 4 * 1024 * 1024;
/** SQLite writes on the event loop: at most this many rows (and BYTES_PER_STATEMENT) per synchronous transaction. */
const SQLITE_ROWS_PER_TRANSACTION = 1000;
/** Sends of one statement at most before its writes fail (the agents send those chunks again later). */
const STATEMENT_ATTEMPTS = 3;

/**
 * Batches output chunks from every agent into few INSERTs. Each write
 * resolves once its rows are committed: that is when the agent may forget
 * them. (executionId, seq) is the primary key of execution_chunks
 * (ExecutionChunkEntity) and rows are inserted with "or ignore", so a
 * resent chunk is stored once.
 *
 * Leading edge, then trailing: a write to an idle writer goes out on the
 * next turn of the event loop (so the chunks of one socket read share a
 * statement); writes that follow within COALESCE_MS of that flush, or
 * while it runs, are coalesced into the next one. Under load the batches
 * grow with the database's latency, not with a timer.
 */
@Injectable()
export class OutputWriter implements OnModuleDestroy {
  private pending: Pending[] = [];
  private pendingRows = 0;
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private draining: Promise<void> | null = null;
  /** When the last batch went out; a write within COALESCE_MS of it waits for the trailing flush. */
  private lastFlushAt = -Infinity;
  /** Writes not yet settled, per execution: what a finish of that execution must wait for, and nothing else. */
  private readonly unsettled = new Map<string, Set<Promise<void>>>();
  private sqlite: { db: SqliteConnection; run: (rows: Row[]) => void } | null = null;
  /** Statements InnoDB rolled back (deadlock victim, lock wait timeout) and that were sent again. */
  private retried = 0;

  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  write(executionId: string, chunks: readonly OutputChunk[]): Promise<void> {
    const written = new Promise<void>((resolve, reject) => {
      const rows = chunks.map((c): Row => [executionId, c.seq, c.stream, c.data]);
      this.pending.push({ rows, resolve, reject });
      this.pendingRows += rows.length;
    });
    let set = this.unsettled.get(executionId);
    if (!set) this.unsettled.set(executionId, (set = new Set()));
    set.add(written);
    const settled = (): void => {
      set.delete(written);
      if (!set.size && this.unsettled.get(executionId) === set) this.unsettled.delete(executionId);
    };
    written.then(settled, settled);
    this.schedule();
    return written;
  }

  /**
   * Resolves when every write of this execution made before the call is
   * committed; rejects if one of them failed (its rows are not stored).
   * Cuts the coalescing short: whoever waits here (a finish) must not wait
   * on the timer. Writes of other executions made later do not hold it up.
   */
  async flushExecution(executionId: string): Promise<void> {
    const set = this.unsettled.get(executionId);
    if (!set?.size) return;
    const writes = [...set];
    void this.kick();
    await Promise.all(writes);
  }

  /** Resolves when everything written before the call is committed (or failed); later writes do not hold it up. */
  async flush(): Promise<void> {
    const writes = [...this.unsettled.values()].flatMap((set) => [...set]);
    if (!writes.length) return;
    void this.kick();
    await Promise.allSettled(writes);
  }

  /** How many statements InnoDB rolled back and were sent again: none unless something locks executions rows against the order in `insert`. */
  get statementsRetried(): number {
    return this.retried;
  }

  async onModuleDestroy(): Promise<void> {
    await this.flush().catch(() => undefined);
  }

  private schedule(): void {
    if (this.pendingRows >= FLUSH_AT_ROWS) return void this.kick();
    // A drain under way takes what is pending when its statement returns (the batch grows with the database latency).
    if (this.draining || this.timer || this.immediate) return;
    const wait = this.lastFlushAt + COALESCE_MS - performance.now();
    if (wait <= 0) this.immediate = setImmediate(() => void this.kick());
    else this.timer = setTimeout(() => void this.kick(), wait);
  }

  private kick(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.immediate) {
      clearImmediate(this.immediate);
      this.immediate = null;
    }
    // The statement is written for every execution in it: as none of their callers.
    if (!this.draining && this.pending.length) this.draining = inAppContext(() => this.drain());
    return this.draining ?? Promise.resolve();
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending.length) {
        const batch = this.pending;
        this.pending = [];
        this.pendingRows = 0;
        this.lastFlushAt = performance.now();
        try {
          await this.insert(batch.flatMap((p) => p.rows));
          for (const p of batch) p.resolve();
        } catch (err) {
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      // In the same turn as the loop's last look at `pending`: a write after it sees no drain and schedules its own.
      this.draining = null;
    }
  }

  /**
   * Multi-row INSERTs with bound parameters, written by hand: the query
   * builder's per-row work (entity metadata, parameter renaming) cost more
   * than the database did at high output rates.
   *
   * Lock order. Each row's foreign key share-locks its execution's row, in
   * the order the rows come; a group of execution transitions
   * (ExecutionTransitions) locks the same rows FOR UPDATE in primary-key
   * order. A fan-out's output arrives in no order, beside its starts: a
   * statement holding execution B and waiting for A, against a group
   * holding A and waiting for B, was a deadlock, and InnoDB rolled back
   * the INSERT, failing the reports of some 400 agents at once, which sent
   * them again seconds later. So the rows go in execution id order (then
   * seq), the order of the primary key, and neither side can hold a row the
   * other took later. A statement rolled back anyway (a lock wait timeout,
   * a cascade delete of a project) stored nothing and is sent again.
   */
  private async insert(rows: Row[]): Promise<void> {
    if (this.dataSource.options.type === 'better-sqlite3') return this.insertSqlite(rows);
    const mysql = this.dataSource.options.type === 'mysql';
    const head = mysql
      ? 'INSERT IGNORE INTO `execution_chunks` (`executionId`, `seq`, `stream`, `data`) VALUES '
      : 'INSERT OR IGNORE INTO "execution_chunks" ("executionId", "seq", "stream", "data") VALUES ';
    // Ids are lowercase UUIDs: code-unit order is the column's collation order.
    const ordered = [...rows].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]));
    // Statements of up to ROWS_PER_STATEMENT rows. They need no transaction around them: every row
    // stands alone, and after a failure the agent sends the same chunks again ("or ignore" keeps one
    // copy). A lone statement commits by itself: one round trip, not BEGIN, INSERT, COMMIT.
    const statements: { sql: string; params: unknown[] }[] = [];
    let params: unknown[] = [];
    let n = 0;
    let bytes = 0;
    const cut = (): void => {
      if (!n) return;
      statements.push({ sql: head + '(?,?,?,?),'.repeat(n).slice(0, -1), params });
      params = [];
      n = 0;
      bytes = 0;
    };
    for (const row of ordered) {
      const size = row[3].length * 3 + 64;
      if (n >= ROWS_PER_STATEMENT || (n && bytes + size > BYTES_PER_STATEMENT)) cut();
      params.push(row[0], row[1], row[2], row[3]);
      n++;
      bytes += size;
    }
    cut();
    for (const st of statements) await this.send(st.sql, st.params);
  }

  private async send(sql: string, params: unknown[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.dataSource.query(sql, params);
        return;
      } catch (err) {
        // Rolled back whole, it stored nothing: sent again as it is.
        if (!lockConflict(err) || attempt >= STATEMENT_ATTEMPTS) throw err;
        this.retried++;
      }
    }
  }

  /**
   * SQLite (embedded): one prepared single-row statement run for every row
   * inside one synchronous transaction on the driver's connection. It blocks
   * the event loop for as long as it writes, so it must be cheap: no SQL to
   * parse per batch, no round trips through the query runner.
   */
  private async insertSqlite(rows: Row[]): Promise<void> {
    const db = (this.dataSource.driver as unknown as { databaseConnection: SqliteConnection }).databaseConnection;
    if (this.sqlite?.db !== db) {
      const stmt = db.prepare('INSERT OR IGNORE INTO "execution_chunks" ("executionId", "seq", "stream", "data") VALUES (?, ?, ?, ?)');
      const run = db.transaction((batch: Row[]) => {
        for (const r of batch) stmt.run(r[0], r[1], r[2], r[3]);
      });
      this.sqlite = { db, run };
    }
    // A few MB per transaction at most, then a turn of the event loop: one large batch must not stall it.
    for (let i = 0; i < rows.length; ) {
      // Never inside a transaction the query runner has open (its rollback would take these rows with it).
      for (let waited = 0; db.inTransaction; waited++) {
        if (waited > 5000) throw new Error('the SQLite connection stayed inside a transaction');
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      let end = i;
      for (let bytes = 0; end < rows.length && end - i < SQLITE_ROWS_PER_TRANSACTION && bytes < BYTES_PER_STATEMENT; end++) bytes += rows[end]![3].length * 3 + 64;
      this.sqlite.run(rows.slice(i, end));
      i = end;
      if (i < rows.length) await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

/** What the writer uses of a better-sqlite3 connection. */
interface SqliteConnection {
  readonly inTransaction: boolean;
  prepare(sql: string): { run(...params: unknown[]): unknown };
  transaction<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void;
}
