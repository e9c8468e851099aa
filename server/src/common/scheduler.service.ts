import { Injectable, Logger, OnModuleDestroy } from '@nestjs/common';

export interface SchedulerTimers {
  setInterval(fn: () => void, ms: number): { unref?(): unknown };
  clearInterval(handle: unknown): void;
}

interface Job {
  name: string;
  run: () => Promise<void>;
  handle: unknown;
  /** The run in progress: a slow run is never overlapped by the next tick. */
  running: Promise<void> | null;
}

/**
 * The node's periodic upkeep (presence sweeps, execution sweeps, later the
 * schedules feature): one place that starts the timers, never lets a run of
 * a job overlap the previous one, logs a failed run instead of losing it,
 * and stops everything when the app shuts down. Every job must be safe to
 * run on every node at once (conditional updates); nothing here elects a
 * leader.
 */
@Injectable()
export class SchedulerService implements OnModuleDestroy {
  private readonly logger = new Logger(SchedulerService.name);
  private readonly jobs = new Map<string, Job>();
  private stopped = false;

  constructor(private readonly timers: SchedulerTimers = globalThis) {}

  every(name: string, intervalMs: number, task: () => Promise<void>): void {
    if (this.jobs.has(name)) throw new Error(`scheduler job "${name}" is already registered`);
    if (this.stopped) return;
    const job: Job = { name, run: task, handle: null, running: null };
    const h = this.timers.setInterval(() => void this.tick(job), intervalMs);
    h.unref?.();
    job.handle = h;
    this.jobs.set(name, job);
  }

  /** Runs a job now (if it is not running already) and resolves when that run ends. */
  async runNow(name: string): Promise<void> {
    const job = this.jobs.get(name);
    if (!job) throw new Error(`no scheduler job "${name}"`);
    await this.tick(job);
  }

  names(): string[] {
    return [...this.jobs.keys()];
  }

  private tick(job: Job): Promise<void> {
    job.running ??= job
      .run()
      .catch((err: unknown) => this.logger.warn({ err: String(err), job: job.name }, 'scheduled job failed'))
      .finally(() => {
        job.running = null;
      });
    return job.running;
  }

  /** First of the shutdown phases: no job starts while the database and the sockets close. */
  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    for (const job of this.jobs.values()) this.timers.clearInterval(job.handle);
    const running = [...this.jobs.values()].map((j) => j.running).filter((r): r is Promise<void> => r !== null);
    this.jobs.clear();
    await Promise.all(running);
  }
}
