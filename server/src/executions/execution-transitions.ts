import type { ExecutionStatus } from '@kapitan/shared';
import { In, type Repository } from 'typeorm';
import { ExecutionEntity } from './execution.entity';

interface Transition {
  id: string;
  from: ExecutionStatus[];
  patch: Partial<ExecutionEntity>;
  resolve: (applied: boolean) => void;
  reject: (err: unknown) => void;
}

/** Transitions per transaction at most. */
const PER_TRANSACTION = 200;

/**
 * The conditional UPDATEs of execution transitions (`… WHERE id = ? AND
 * status IN (…)`), grouped: those asked for while another group commits go
 * out together in one transaction on MySQL/MariaDB, so a fan-out's or a
 * storm's hundreds of starts and finishes cost a few commits (a log flush
 * each), not one each. Each UPDATE still reports whether it applied. A lone
 * transition is one plain statement, as before: no added latency.
 *
 * Groups run one after another, and inside a group the rows are updated in
 * id order (two reports of one execution keep their order), so two groups
 * cannot deadlock on each other. If a group fails, all of its transitions
 * fail and nothing of it is applied; their callers answer "try again".
 * SQLite commits cheaply and shares one connection: there each transition
 * stays its own statement.
 */
export class ExecutionTransitions {
  private queued: Transition[] = [];
  private scheduled = false;
  private running: Promise<void> | null = null;

  constructor(private readonly executions: Repository<ExecutionEntity>) {}

  /** Applies `patch` if the execution's status is one of `from`; resolves with whether it did. */
  apply(id: string, from: ExecutionStatus[], patch: Partial<ExecutionEntity>): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.queued.push({ id, from, patch, resolve, reject });
      if (this.running || this.scheduled) return; // the running group's loop takes it next
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.running ??= this.run();
      });
    });
  }

  private async run(): Promise<void> {
    try {
      while (this.queued.length) {
        const group = this.queued.splice(0, PER_TRANSACTION).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
        if (group.length === 1 || this.executions.manager.connection.options.type !== 'mysql') {
          for (const t of group) {
            await this.executions.update({ id: t.id, status: In(t.from) }, t.patch).then(
              (r) => t.resolve(!!r.affected),
              (err: unknown) => t.reject(err),
            );
          }
          continue;
        }
        try {
          const applied = await this.executions.manager.transaction(async (tx) => {
            const repo = tx.getRepository(ExecutionEntity);
            const out: boolean[] = [];
            for (const t of group) out.push(!!(await repo.update({ id: t.id, status: In(t.from) }, t.patch)).affected);
            return out;
          });
          group.forEach((t, i) => t.resolve(applied[i]!));
        } catch (err) {
          for (const t of group) t.reject(err);
        }
      }
    } finally {
      // In the turn of the loop's last look at `queued`: a later transition schedules its own group.
      this.running = null;
    }
  }
}
