import { Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { inAppContext } from './app-context';

export interface SchedulerTimers {
  setInterval(fn: () => void, ms: number): { unref?(): unknown };
  clearInterval(handle: unknown): void;
  setTimeout(fn: () => void, ms: number): { unref?(): unknown };
  clearTimeout(handle: unknown): void;
}

interface Job {
  name: string;
  run: () => Promise<void>;
  handle: unknown;
  /** Self-timed jobs (`timed`) re-arm a timeout after each run instead of an interval. */
  timed?: { task: () => Promise<number>; maxDelayMs: number };
  rearm?: (ms: number) => void;
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

  /**
   * A job that says when it wants to run next: `task` answers the delay in
   * ms (e.g. until the earliest fire time it knows), capped at `maxDelayMs`
   * so what other nodes changed meanwhile is seen within that bound. Firing
   * at the moment something is due instead of on a coarse poll. `wake` runs
   * it again at once (after a local change).
   */
  timed(name: string, maxDelayMs: number, task: () => Promise<number>): void {
    if (this.jobs.has(name)) throw new Error(`scheduler job "${name}" is already registered`);
    if (this.stopped) return;
    const job: Job = { name, run: async () => undefined, handle: null, running: null, timed: { task, maxDelayMs } };
    let nextDelay = 0;
    job.run = async () => {
      nextDelay = maxDelayMs;
      nextDelay = await task();
    };
    const arm = (ms: number): void => {
      if (this.stopped) return;
      this.timers.clearTimeout(job.handle);
      // `wake` re-arms from inside the request that changed a schedule; the job must not run as that request.
      const h = inAppContext(() => this.timers.setTimeout(() => void this.tick(job).then(() => arm(Math.max(0, Math.min(nextDelay, maxDelayMs)))), ms));
      h.unref?.();
      job.handle = h;
    };
    job.rearm = arm;
    this.jobs.set(name, job);
    arm(0);
  }

  /** Runs a timed job as soon as it is not running (its next run is then timed afresh). */
  wake(name: string): void {
    const job = this.jobs.get(name);
    if (!job?.rearm || this.stopped) return;
    if (job.running) void job.running.then(() => job.rearm?.(0));
    else job.rearm(0);
  }

  /**
   * Runs a job now and resolves when that run ends. A run already under way
   * is waited for first, never joined: it may have read its inputs (a clock,
   * a due list) before the caller changed them, and the caller is owed a
   * whole pass that starts after its call.
   */
  async runNow(name: string): Promise<void> {
    const job = this.jobs.get(name);
    if (!job) throw new Error(`no scheduler job "${name}"`);
    if (job.running) await job.running;
    await this.tick(job);
  }

  names(): string[] {
    return [...this.jobs.keys()];
  }

  private tick(job: Job): Promise<void> {
    job.running ??= inAppContext(() => job.run())
      .catch((err: unknown) => this.logger.warn({ err: String(err), job: job.name }, 'scheduled job failed'))
      .finally(() => {
        job.running = null;
      });
    return job.running;
  }

  /** First of the shutdown phases: no job starts while the database and the sockets close. */
  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    for (const job of this.jobs.values()) {
      if (job.timed) this.timers.clearTimeout(job.handle);
      else this.timers.clearInterval(job.handle);
    }
    const running = [...this.jobs.values()].map((j) => j.running).filter((r): r is Promise<void> => r !== null);
    this.jobs.clear();
    await Promise.all(running);
  }
}
