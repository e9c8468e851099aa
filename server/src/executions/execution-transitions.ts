import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { ExecutionStatus } from '@kapitan/shared';
import { EntityManager, In, Repository } from 'typeorm';
import { inAppContext } from '../common/app-context';
import { lockConflict } from '../common/lock-conflict';
import { ExecutionEntity } from './execution.entity';

interface Transition {
  id: string;
  from: ExecutionStatus[];
  patch: Partial<ExecutionEntity>;
  resolve: (applied: boolean) => void;
  reject: (err: unknown) => void;
}

/** Transitions per transaction at most: the machines rows it share-locks stay locked until its commit. */
const PER_TRANSACTION = 250;

/**
 * The conditional transitions of executions (applied only from the
 * statuses they may follow), grouped on MySQL/MariaDB: those asked for
 * while a group commits go out together in one transaction, so a fan-out's
 * hundreds of starts and finishes cost a few commits (a redo-log flush each
 * with innodb_flush_log_at_trx_commit=1) and a few statements, instead of
 * one each. Each transition still learns whether it applied. A lone
 * transition is one plain conditional UPDATE: no added latency.
 *
 * Lock order. A status change rewrites the row's entry in
 * IDX_executions_machine_status, the index of the `machineId` foreign key,
 * so InnoDB share-locks the machine's row, and a group holds those locks
 * until it commits. Presence writes many machines rows in one statement
 * (heartbeats, hellos, shutdown), locking them in primary-key order. A
 * group therefore writes its rows in machine id order (`ORDER BY
 * machineId`): both sides take machine rows in ascending id order, so
 * neither can wait for the other while holding a row the other wants (an
 * earlier version wrote in execution id order and deadlocked against
 * presence in a reconnect storm). Groups of one node run one at a time; a
 * group of another node locks in the same order. The UPDATE is forced onto
 * the primary key: ordered by machine id, InnoDB otherwise walked an index
 * of the whole table, waited on the rows of a run being inserted and held
 * gaps its INSERT needed, and the run's creation died as the deadlock
 * victim with a 500.
 *
 * Should InnoDB still pick a group as a deadlock victim (against a cascade
 * delete of a project, say) or a lock wait time out, the whole group was
 * rolled back, so its transitions are applied again one plain statement
 * each: nothing is lost and nothing applied twice. Any other failure fails
 * every transition of the group; their callers answer "try again" and the
 * agents report again.
 *
 * SQLite shares one connection (a transaction there would take in whatever
 * else runs meanwhile) and commits cheaply: each transition stays its own
 * statement.
 */
@Injectable()
export class ExecutionTransitions {
  private readonly logger = new Logger(ExecutionTransitions.name);
  private queued: Transition[] = [];
  private scheduled = false;
  private running: Promise<void> | null = null;
  private readonly grouped: boolean;
  /** Groups rolled back by InnoDB (deadlock victim, lock wait timeout) and applied again one by one. */
  private rolledBack = 0;

  constructor(@InjectRepository(ExecutionEntity) private readonly executions: Repository<ExecutionEntity>) {
    this.grouped = executions.manager.connection.options.type === 'mysql';
  }

  /** Applies `patch` if the execution's status is one of `from`; resolves with whether it did. */
  apply(id: string, from: ExecutionStatus[], patch: Partial<ExecutionEntity>): Promise<boolean> {
    if (!this.grouped) return this.alone(id, from, patch);
    return new Promise((resolve, reject) => {
      this.queued.push({ id, from, patch, resolve, reject });
      if (this.running || this.scheduled) return; // the running group's loop takes it next
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.running ??= inAppContext(() => this.run());
      });
    });
  }

  /** How many groups InnoDB rolled back (they were then applied one by one): none unless something locks against the order above. */
  get groupsRolledBack(): number {
    return this.rolledBack;
  }

  /** One plain conditional UPDATE (autocommit). */
  async alone(id: string, from: ExecutionStatus[], patch: Partial<ExecutionEntity>): Promise<boolean> {
    return !!(await this.executions.update({ id, status: In(from) }, patch)).affected;
  }

  private async run(): Promise<void> {
    try {
      while (this.queued.length) {
        // In the order asked: two transitions of one execution are decided one after the other.
        const group = this.queued.splice(0, PER_TRANSACTION);
        if (group.length === 1) {
          await this.eachAlone(group);
          continue;
        }
        let applied: boolean[];
        try {
          applied = await this.executions.manager.transaction((tx) => this.applyGroup(tx, group));
        } catch (err) {
          const code = lockConflict(err);
          if (code) {
            this.rolledBack++;
            this.logger.warn({ code, transitions: group.length }, 'a group of execution transitions was rolled back; applying them one by one');
            await this.eachAlone(group);
          } else {
            for (const t of group) t.reject(err);
          }
          continue;
        }
        group.forEach((t, i) => t.resolve(applied[i]!));
      }
    } finally {
      // In the turn of the loop's last look at `queued`: a later transition schedules its own group.
      this.running = null;
    }
  }

  /**
   * One group in one transaction, in four statements whatever its size: the
   * rows are read and locked (FOR UPDATE, primary-key order), each
   * transition is decided against the locked status in the order asked
   * (a start and then a finish of one execution both apply), and the rows
   * that change are written by one UPDATE in machine id order (the lock
   * order above). Locked, no row can change between the read and the write,
   * so what is decided is what is written.
   */
  private async applyGroup(tx: EntityManager, group: Transition[]): Promise<boolean[]> {
    const ids = [...new Set(group.map((t) => t.id))];
    const table = this.executions.metadata.tableName;
    const q = (name: string): string => tx.connection.driver.escape(name);
    const locked: { id: string; status: ExecutionStatus }[] = await tx.query(
      `SELECT ${q('id')}, ${q('status')} FROM ${q(table)} WHERE ${q('id')} IN (${ids.map(() => '?').join(',')}) FOR UPDATE`,
      ids,
    );
    const status = new Map(locked.map((r) => [r.id, r.status]));
    const patches = new Map<string, Partial<ExecutionEntity>>();
    const applied = group.map((t) => {
      const now = status.get(t.id);
      if (now === undefined || !t.from.includes(now)) return false;
      patches.set(t.id, { ...patches.get(t.id), ...t.patch });
      if (t.patch.status) status.set(t.id, t.patch.status);
      return true;
    });
    if (!patches.size) return applied;
    const byColumn = new Map<keyof ExecutionEntity, [string, unknown][]>();
    for (const [id, patch] of patches) {
      for (const [key, value] of Object.entries(patch) as [keyof ExecutionEntity, unknown][]) {
        if (value === undefined) continue;
        let list = byColumn.get(key);
        if (!list) byColumn.set(key, (list = []));
        list.push([id, value]);
      }
    }
    const params: unknown[] = [];
    const sets = [...byColumn].map(([key, values]) => {
      const column = this.executions.metadata.findColumnWithPropertyName(key);
      if (!column) throw new Error(`executions has no column ${key}`);
      const name = q(column.databaseName);
      for (const [id, value] of values) params.push(id, tx.connection.driver.preparePersistentValue(value, column));
      return `${name} = CASE ${q('id')} ${values.map(() => 'WHEN ? THEN ?').join(' ')} ELSE ${name} END`;
    });
    const changed = [...patches.keys()];
    params.push(...changed);
    const result: { affectedRows?: number } = await tx.query(
      `UPDATE ${q(table)} FORCE INDEX (PRIMARY) SET ${sets.join(', ')} WHERE ${q('id')} IN (${changed.map(() => '?').join(',')}) ORDER BY ${q('machineId')}, ${q('id')}`,
      params,
    );
    // Every row named is locked and changes status: anything else means the decision above is not what was written.
    if (result.affectedRows !== changed.length) throw new Error(`a group of execution transitions wrote ${result.affectedRows} rows, expected ${changed.length}`);
    return applied;
  }

  private async eachAlone(group: Transition[]): Promise<void> {
    for (const t of group) {
      await this.alone(t.id, t.from, t.patch).then(t.resolve, t.reject);
    }
  }
}
