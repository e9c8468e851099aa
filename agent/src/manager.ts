/**
 * Executions on this agent: de-duplicates dispatches, runs scripts, feeds
 * their events into the outbox, applies back-pressure, journals what is
 * active, and after a restart reports what was lost.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExecutionCancel, ExecutionDispatch, ExecutionFinished, OutputChunk } from '@kapitan/shared';
import { executionChannel } from './execution-channel';
import { DEFAULT_KILL_GRACE_MS, ScriptExecution, type ExecutionCallbacks, type ExecutorOptions } from './executor';
import { bootId, groupAlive, processStartTime, stopGroup, type GroupStop } from './process-group';
import type { ActiveExecutionRecord, ExecutionJournal } from './journal';
import { silentLogger, type Logger } from './logger';
import type { Outbox, RestoredStream } from './outbox';

/** What the manager needs of a running execution (a real script, or a simulated one). */
export interface ExecutionRunner {
  readonly executionId: string;
  readonly pid: number | null;
  readonly startedAt: string | null;
  readonly directory: string | null;
  readonly done: Promise<ExecutionFinished>;
  start(): Promise<void>;
  cancel(): boolean;
  pause(): void;
  resume(): void;
}

export type RunnerFactory = (dispatch: ExecutionDispatch, callbacks: ExecutionCallbacks) => ExecutionRunner;

export interface ExecutionManagerOptions {
  outbox: Outbox;
  journal: ExecutionJournal;
  /** Parent of the per-execution scratch directories (for the default runner). */
  workDir: string;
  executor?: Omit<ExecutorOptions, 'workDir' | 'logger'>;
  /** Replace the script runner (simulated agents). */
  createRunner?: RunnerFactory;
  /** Why the client policy refuses this script, or null (default: nothing refused). */
  refuse?: (script: string) => string | null;
  logger?: Logger;
}

export type DispatchOutcome = 'started' | 'duplicate' | 'invalid' | 'refused';

export class ExecutionManager {
  private readonly running = new Map<string, ExecutionRunner>();
  private readonly outbox: Outbox;
  private readonly journal: ExecutionJournal;
  private readonly logger: Logger;
  private readonly createRunner: RunnerFactory;
  private readonly killGraceMs: number;
  private stopping = false;
  private readonly orphanStops = new Set<GroupStop>();

  constructor(private readonly options: ExecutionManagerOptions) {
    this.outbox = options.outbox;
    this.journal = options.journal;
    this.logger = options.logger ?? silentLogger;
    this.killGraceMs = options.executor?.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
    this.createRunner =
      options.createRunner ??
      ((dispatch, callbacks) =>
        new ScriptExecution(dispatch, { ...options.executor, workDir: options.workDir, logger: this.logger }, callbacks));
    this.outbox.on('done', (executionId, _outcome, channel) => {
      if (channel !== executionChannel.name || this.running.has(executionId)) return;
      this.journal.removeActive(executionId);
    });
    this.outbox.on('drain', () => {
      for (const r of this.running.values()) r.resume();
    });
  }

  /** Executions whose script is running now. */
  runningIds(): string[] {
    return [...this.running.keys()];
  }

  get(executionId: string): ExecutionRunner | undefined {
    return this.running.get(executionId);
  }

  /** For `agent:hello`: running executions and those with events not yet acknowledged. */
  activeExecutionIds(): string[] {
    const ids = new Set<string>(this.running.keys());
    for (const id of this.outbox.keys(executionChannel)) ids.add(id);
    return [...ids].slice(0, 10_000);
  }

  /**
   * `execution:dispatch` (already parsed by the connection). A repeated
   * dispatch runs nothing and re-sends the execution's unacknowledged events.
   */
  handleDispatch(dispatch: ExecutionDispatch): DispatchOutcome {
    if (this.stopping) return 'invalid';
    const id = dispatch.executionId;
    if (this.running.has(id) || this.journal.isKnown(id)) {
      this.logger.info('ignoring a repeated dispatch', { executionId: id, running: this.running.has(id) });
      this.outbox.resend(executionChannel, id);
      return 'duplicate';
    }
    const refused = this.options.refuse?.(dispatch.script) ?? null;
    if (refused) return this.refuseDispatch(id, refused);
    // journal first: a crash from here on is reported as `lost` after the restart
    this.journal.putActive({
      executionId: id,
      pid: null,
      procStart: null,
      bootId: null,
      startedAt: null,
      lastSeq: -1,
      dir: null,
      finished: null,
    });
    this.journal.addKnown(id);
    const log = this.logger.child({ executionId: id });
    let runner: ExecutionRunner;
    const callbacks: ExecutionCallbacks = {
      onStarted: (started) => {
        if (this.stopping) return;
        this.journal.putActive({
          executionId: id,
          pid: started.pid ?? null,
          procStart: started.pid ? processStartTime(started.pid) : null,
          bootId: bootId(),
          startedAt: started.startedAt,
          lastSeq: -1,
          dir: runner?.directory ?? null,
          finished: null,
        });
        this.outbox.open(executionChannel, id, started);
        log.info('execution started', { pid: started.pid });
      },
      onChunk: (chunk) => {
        if (this.stopping) return;
        this.outbox.add(executionChannel, id, chunk);
        this.journal.updateLastSeq(id, chunk.seq);
        if (this.outbox.full) runner.pause();
      },
      onFinished: (finished) => {
        if (this.stopping) return;
        this.running.delete(id);
        this.journal.setFinished(id, finished);
        this.outbox.close(executionChannel, id, finished);
        log.info('execution finished', { status: finished.status, exitCode: finished.exitCode, signal: finished.signal, lastSeq: finished.lastSeq });
      },
    };
    runner = this.createRunner(dispatch, callbacks);
    this.running.set(id, runner);
    if (this.outbox.full) runner.pause();
    log.info('execution dispatched', { args: dispatch.args.length, timeoutSeconds: dispatch.timeoutSeconds, cwd: dispatch.cwd });
    void runner.start();
    return 'started';
  }

  /** Nothing runs: the refusal is journalled and sent like any end, so a repeated dispatch re-sends it instead of running. */
  private refuseDispatch(id: string, reason: string): DispatchOutcome {
    const finished: ExecutionFinished = {
      executionId: id,
      status: 'refused',
      exitCode: null,
      signal: null,
      finishedAt: new Date().toISOString(),
      lastSeq: -1,
      reason: reason.slice(0, 1000),
    };
    this.journal.putActive({ executionId: id, pid: null, procStart: null, bootId: null, startedAt: null, lastSeq: -1, dir: null, finished });
    this.journal.addKnown(id);
    this.journal.setFinished(id, finished);
    this.outbox.close(executionChannel, id, finished);
    this.logger.warn('execution refused by the client policy', { executionId: id, reason });
    return 'refused';
  }

  /** `execution:cancel` (already parsed). Unknown or finished executions are ignored. */
  handleCancel(cancel: ExecutionCancel): boolean {
    const runner = this.running.get(cancel.executionId);
    if (!runner) {
      this.logger.debug('cancel of an execution that is not running: ignored', { executionId: cancel.executionId });
      return false;
    }
    this.logger.info('cancelling execution', { executionId: runner.executionId });
    return runner.cancel();
  }

  /**
   * At start-up: every execution the journal lists as active that this
   * process is not running was interrupted by a restart. What the outbox
   * restored from its spool (`restored`: output read but not acknowledged
   * before the restart) is already queued; after it, the saved final event
   * is sent again, or the execution is reported `lost` (and its orphaned
   * process group, if still there, is killed). Returns how many were reported.
   */
  recoverFromJournal(restored: readonly RestoredStream[] = []): number {
    const spooled = new Map(restored.filter((r) => r.channel === executionChannel.name).map((r) => [r.key, r]));
    const records = this.journal.listActive();
    // A spooled execution the journal no longer lists (it was being forgotten) still needs its end.
    for (const r of spooled.values()) {
      if (!r.closed && (r.opened || r.items > 0) && !records.some((rec) => rec.executionId === r.key)) {
        records.push({ executionId: r.key, pid: null, procStart: null, bootId: null, startedAt: null, lastSeq: -1, dir: null, finished: null });
      }
    }
    let n = 0;
    for (const rec of records) {
      if (this.running.has(rec.executionId)) continue;
      this.removeDir(rec.dir);
      const fromSpool = spooled.get(rec.executionId);
      if (fromSpool?.closed) {
        n++; // its final event came back from the spool, in order after its output
        continue;
      }
      if (rec.finished) {
        this.outbox.close(executionChannel, rec.executionId, rec.finished);
        n++;
        continue;
      }
      const spooledSeq = fromSpool?.lastItem ? (fromSpool.lastItem as OutputChunk).seq : -1;
      rec.lastSeq = Math.max(rec.lastSeq, spooledSeq);
      const killed = this.killOrphan(rec);
      const lost: ExecutionFinished = {
        executionId: rec.executionId,
        status: 'lost',
        exitCode: null,
        signal: null,
        finishedAt: new Date().toISOString(),
        lastSeq: rec.lastSeq,
        reason:
          rec.pid === null
            ? 'agent restarted before the script started'
            : `agent restarted while the script was running (pid ${rec.pid})${killed ? '; its orphaned process group was killed' : ''}`,
      };
      this.logger.warn('reporting an execution interrupted by an agent restart as lost', {
        executionId: rec.executionId,
        pid: rec.pid,
        lastSeq: rec.lastSeq,
        killed,
      });
      this.journal.setFinished(rec.executionId, lost);
      this.outbox.close(executionChannel, rec.executionId, lost);
      n++;
    }
    return n;
  }

  private killOrphan(rec: ActiveExecutionRecord): boolean {
    const pid = rec.pid;
    if (pid === null) return false;
    const currentBoot = bootId();
    if (rec.bootId && currentBoot && rec.bootId !== currentBoot) return false; // rebooted since
    const start = processStartTime(pid);
    // pid alive but started at another time: reused by an unrelated process (and our group is gone)
    if (start !== null && rec.procStart !== null && start !== rec.procStart) return false;
    if (!groupAlive(pid)) return false;
    const stop = stopGroup(pid, this.killGraceMs, this.logger);
    this.orphanStops.add(stop);
    void stop.settled.then(() => this.orphanStops.delete(stop));
    return true;
  }

  private removeDir(dir: string | null): void {
    if (!dir) return;
    const root = path.resolve(this.options.workDir);
    const target = path.resolve(dir);
    if (!target.startsWith(root + path.sep)) return; // never outside our scratch area
    try {
      fs.rmSync(target, { recursive: true, force: true });
    } catch (err) {
      this.logger.warn('could not remove an execution directory', { dir: target, err });
    }
  }

  /** Stop producing events and journalling, touching no process (a simulated crash). */
  abandon(): void {
    this.stopping = true;
    for (const s of this.orphanStops) s.cancel();
    this.orphanStops.clear();
  }

  /**
   * Shutdown of the agent: the scripts' process groups get SIGTERM, then
   * SIGKILL after `graceMs`. They stay in the journal, so the next start
   * reports them `lost`.
   */
  async shutdown(graceMs = 2000): Promise<void> {
    this.stopping = true;
    const runners = [...this.running.values()];
    const stops = runners.flatMap((r) => (r.pid ? [stopGroup(r.pid, graceMs, this.logger)] : []));
    if (runners.length > 0) {
      await Promise.race([Promise.all(runners.map((r) => r.done)), Promise.all(stops.map((s) => s.settled))]);
      // the scripts are done (or out of time): whatever of their groups is left gets KILL now
      for (const s of stops) s.killNow();
    }
    for (const s of this.orphanStops) s.cancel();
    this.orphanStops.clear();
    this.journal.flush();
  }
}
