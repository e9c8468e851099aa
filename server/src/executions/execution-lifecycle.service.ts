import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { ExecutionDispatch, ExecutionFinished, ExecutionStarted, ExecutionStatus, isFinalStatus, OutputChunk } from '@kapitan/shared';
import { In, LessThan, Repository } from 'typeorm';
import { DomainEventsService } from '../common/events.service';
import { SchedulerService } from '../common/scheduler.service';
import { TickBatcher } from '../common/tick-batcher';
import { APP_CONFIG, AppConfig } from '../config/config';
import { PresenceService } from '../machines/presence.service';
import { ExecutionEntity } from './execution.entity';
import { toSummary } from './execution.mapper';
import { ExecutionSecretsService } from './execution-secrets.service';
import { ExecutionTransitions } from './execution-transitions';
import { OutputWriter } from './output-writer.service';

export const EXECUTION_SWEEP_EVERY_MS = 5_000;
/** Dispatched this long ago and still not started: sent again to the socket that holds the machine. */
export const RESEND_UNSTARTED_AFTER_MS = 30_000;
const ACTIVE: ExecutionStatus[] = ['queued', 'dispatched', 'running'];
const copy = (e: ExecutionEntity): ExecutionEntity => Object.assign(new ExecutionEntity(), e);

/** What a machine that just said hello should be sent. */
export interface HelloPlan {
  dispatch: ExecutionDispatch[];
  cancel: string[];
  /**
   * Every execution the hello's read found on this machine, so the machine's
   * own: the new socket needs no ownership read at its first report of one
   * (after a restart that is every running execution of every agent).
   */
  owned: string[];
}

/**
 * The state machine of an execution: queued → dispatched → running → a
 * final status, each step a conditional UPDATE so two nodes or two reports
 * cannot both apply it. One start and one finish per execution whatever the
 * agent repeats; output forwarded live, then stored once per (execution,
 * seq) (design invariants 2 and 3); the sweep expires and loses work nobody
 * will report on.
 */
@Injectable()
export class ExecutionLifecycleService implements OnModuleInit {
  private readonly logger = new Logger(ExecutionLifecycleService.name);
  // Reads of many sockets in one turn share a statement: a fan-out's starts and finishes, a reconnect
  // storm's hellos. The conditional UPDATEs stay one per execution (each must know whether it applied),
  // grouped into few commits (ExecutionTransitions).
  private readonly rowById = new TickBatcher<string, ExecutionEntity>(
    async (ids) => new Map((await this.executions.find({ where: { id: In(ids) } })).map((e) => [e.id, e])),
    { copy },
  );
  private readonly ownerOf = new TickBatcher<string, string>(
    async (ids) => new Map((await this.executions.find({ where: { id: In(ids) }, select: ['id', 'machineId'] })).map((e) => [e.id, e.machineId])),
  );
  private readonly openOf = new TickBatcher<string, ExecutionEntity[]>(
    async (machineIds) => {
      const open = new Map<string, ExecutionEntity[]>();
      for (const e of await this.executions.find({ where: { machineId: In(machineIds), status: In(ACTIVE) }, order: { createdAt: 'ASC' } })) {
        let list = open.get(e.machineId);
        if (!list) open.set(e.machineId, (list = []));
        list.push(e);
      }
      return open;
    },
    { max: 200, copy: (list) => list.map(copy) },
  );

  constructor(
    @InjectRepository(ExecutionEntity) private readonly executions: Repository<ExecutionEntity>,
    private readonly writer: OutputWriter,
    private readonly presence: PresenceService,
    private readonly events: DomainEventsService,
    private readonly scheduler: SchedulerService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly secrets: ExecutionSecretsService,
    private readonly transitions: ExecutionTransitions,
  ) {}

  onModuleInit(): void {
    this.scheduler.every('executions.sweep', EXECUTION_SWEEP_EVERY_MS, () => this.sweep());
  }

  /** Which of `executionIds` are this machine's, as stored: the agent's own list is only a claim. */
  async ownedBy(machineId: string, executionIds: readonly string[]): Promise<Set<string>> {
    const owners = await Promise.all(executionIds.map((id) => this.ownerOf.get(id)));
    return new Set(executionIds.filter((_, i) => owners[i] === machineId));
  }

  /**
   * A machine said hello: what it should (re)run and cancel. Work it still
   * holds is left alone; work the server thinks runs but the agent no longer
   * knows is lost; cancel-requested work that never started is cancelled.
   */
  async planForHello(machineId: string, activeIds: readonly string[]): Promise<HelloPlan> {
    const active = new Set(activeIds);
    const now = new Date();
    const open = (await this.openOf.get(machineId)) ?? [];
    const plan: HelloPlan = { dispatch: [], cancel: [], owned: open.map((e) => e.id) };
    for (const e of open) {
      // Still running on the agent: its next output needs this node's masks; the row at hand may already tell them.
      if (e.status === 'running' && active.has(e.id)) this.secrets.prime(e);
      if (e.status === 'running' && !active.has(e.id)) {
        await this.finishIf(e.id, ['running'], { status: 'lost', finishedAt: now, reason: 'the agent came back without this execution (its state was lost)' }, e);
      } else if (e.status !== 'running' && e.expiresAt <= now) {
        await this.finishIf(e.id, [e.status], { status: 'expired', finishedAt: now, reason: 'the machine stayed offline until the work expired' }, e);
      } else if (e.status !== 'running' && e.cancelRequestedAt) {
        await this.finishIf(e.id, [e.status], { status: 'cancelled', finishedAt: now, reason: 'cancelled before it started' }, e);
      } else if (e.status === 'running' && e.cancelRequestedAt) {
        plan.cancel.push(e.id);
      } else if (e.status !== 'running') {
        const built = await this.secrets.build(e);
        if ('dispatch' in built) plan.dispatch.push(built.dispatch);
        else await this.finishIf(e.id, [e.status], { status: 'failed', finishedAt: now, reason: built.refused }, e);
      }
    }
    const queued = plan.dispatch.map((d) => d.executionId);
    if (queued.length) {
      await this.executions.update({ id: In(queued), status: 'queued' }, { status: 'dispatched', dispatchedAt: now });
      for (const e of open.filter((x) => queued.includes(x.id) && x.status === 'queued')) {
        e.status = 'dispatched';
        e.dispatchedAt = now;
        this.events.publish('execution.updated', { projectId: e.projectId, execution: toSummary(e) });
      }
    }
    return plan;
  }

  async dispatchPayloads(executionIds: string[]): Promise<ExecutionDispatch[]> {
    const rows = await this.executions.find({ where: { id: In(executionIds), status: 'dispatched' } });
    const out: ExecutionDispatch[] = [];
    for (const e of rows) {
      const built = await this.secrets.build(e);
      if ('dispatch' in built) out.push(built.dispatch);
      else await this.finishIf(e.id, ['dispatched'], { status: 'failed', finishedAt: new Date(), reason: built.refused }, e);
    }
    return out;
  }

  /** The one start of an execution. Returns false when it must not run (cancelled or finished meanwhile). */
  async started(machineId: string, p: ExecutionStarted): Promise<boolean> {
    const e = await this.rowById.get(p.executionId);
    if (!e || e.machineId !== machineId) return false;
    if (e.status === 'running') return true; // a repeated start: accepted once, acknowledged always
    if (isFinalStatus(e.status)) return false;
    const startedAt = new Date(p.startedAt);
    if (await this.transitions.apply(e.id, ['queued', 'dispatched'], { status: 'running', startedAt, dispatchedAt: e.dispatchedAt ?? startedAt })) {
      Object.assign(e, { status: 'running', startedAt, dispatchedAt: e.dispatchedAt ?? startedAt });
      this.events.publish('execution.updated', { projectId: e.projectId, execution: toSummary(e) });
      return true;
    }
    // Lost the race: to a repeat of this start (it runs: fine) or to a cancel or finish (it must not run).
    const now = await this.executions.findOne({ where: { id: e.id }, select: ['id', 'status'] });
    return now?.status === 'running';
  }

  /** Forward at once (design invariant 3), then store; resolves when stored. */
  async output(executionId: string, raw: OutputChunk[]): Promise<void> {
    const chunks = await this.secrets.mask(executionId, raw);
    this.events.publish('execution.output', { executionId, chunks });
    await this.writer.write(executionId, chunks);
  }

  /** The one finish of an execution; later reports of it change nothing. */
  async finished(machineId: string, p: ExecutionFinished): Promise<void> {
    // Chunks of this execution sent before the finish may still sit in the batch: commit them before
    // the status flips, so whoever sees it final reads a whole log. Only this execution's: a finish
    // does not queue behind every other agent's output. If one of them failed, so does the finish
    // (nothing changed; the agent sends the output, then the finish, again).
    await this.writer.flushExecution(p.executionId);
    this.secrets.forget(p.executionId);
    const e = await this.rowById.get(p.executionId);
    if (!e || e.machineId !== machineId || isFinalStatus(e.status)) return;
    const finishedAt = new Date(p.finishedAt);
    await this.finishIf(
      e.id,
      ACTIVE,
      {
        status: p.status,
        exitCode: p.exitCode,
        signal: p.signal,
        finishedAt,
        lastSeq: p.lastSeq,
        reason: p.reason ?? null,
        // lost and refused never started here: a made-up start would show a run that never was.
        startedAt: e.startedAt ?? (p.status === 'lost' || p.status === 'refused' ? null : finishedAt),
      },
      e,
    );
  }


  /** Expire queued work past its time; lose running work of machines gone for too long. Idempotent on every node. */
  async sweep(): Promise<void> {
    await this.resendUnstarted();
    const now = new Date();
    const expired = await this.executions.find({ where: { status: In(['queued', 'dispatched']), expiresAt: LessThan(now) }, take: 1000 });
    for (const e of expired) {
      await this.finishIf(e.id, ['queued', 'dispatched'], { status: 'expired', finishedAt: now, reason: 'the machine stayed offline until the work expired' });
    }
    const running = await this.executions.find({ where: { status: 'running' }, select: ['id', 'machineId'], take: 5000 });
    const gone = await this.presence.offlineSince([...new Set(running.map((e) => e.machineId))], this.config.lostAfterSeconds);
    for (const e of running.filter((x) => gone.has(x.machineId))) {
      await this.finishIf(e.id, ['running'], {
        status: 'lost',
        finishedAt: now,
        reason: `the agent has been offline for more than ${this.config.lostAfterSeconds} s`,
      });
    }
  }

  /** When this node last sent each unstarted execution again (bounded by the executions of the machines it holds). */
  private readonly resentAt = new Map<string, number>();

  /**
   * A dispatch is an emit to the machine's room, and nothing acknowledges
   * it: one that reached no socket (lost between nodes, or sent while the
   * agent's connection was being replaced) would wait for the agent's next
   * hello, which a healthy connection never sends. So every node sends
   * again, to the machines whose hello it holds, what was dispatched
   * RESEND_UNSTARTED_AFTER_MS ago and has not started; at most once per
   * that period each. The agent de-duplicates by id, so a copy that
   * arrives twice runs once. Only the holding node sends: no claim, no
   * duplicate per node.
   */
  async resendUnstarted(now = Date.now()): Promise<number> {
    const held = this.presence.heldHere();
    if (!held.length) {
      this.resentAt.clear();
      return 0;
    }
    const cutoff = new Date(now - RESEND_UNSTARTED_AFTER_MS);
    const due: ExecutionEntity[] = [];
    for (let i = 0; i < held.length; i += 500) {
      due.push(
        ...(await this.executions.find({
          where: { machineId: In(held.slice(i, i + 500)), status: 'dispatched', dispatchedAt: LessThan(cutoff) },
          select: ['id', 'machineId'],
        })),
      );
    }
    const dueIds = new Set(due.map((e) => e.id));
    for (const id of this.resentAt.keys()) if (!dueIds.has(id)) this.resentAt.delete(id);
    const byMachine = new Map<string, string[]>();
    for (const e of due) {
      if (now - (this.resentAt.get(e.id) ?? -Infinity) < RESEND_UNSTARTED_AFTER_MS) continue;
      this.resentAt.set(e.id, now);
      let list = byMachine.get(e.machineId);
      if (!list) byMachine.set(e.machineId, (list = []));
      list.push(e.id);
    }
    for (const [machineId, executionIds] of byMachine) this.events.publish('execution.dispatch', { machineId, executionIds });
    if (byMachine.size) this.logger.warn({ executions: [...byMachine.values()].flat().length, machines: byMachine.size }, 'dispatched work not started after 30 s: sent again');
    return [...byMachine.values()].reduce((n, ids) => n + ids.length, 0);
  }

  /** Conditional transition: applies only from `from`, so two nodes or two reports cannot both apply it. */
  async finishIf(id: string, from: ExecutionStatus[], patch: Partial<ExecutionEntity>, known?: ExecutionEntity): Promise<ExecutionEntity | null> {
    if (!(await this.transitions.apply(id, from, patch))) return null;
    // The row as it was read just before, with the patch that was applied: what the summary shows cannot have changed otherwise.
    const e = known ? Object.assign(known, patch) : await this.executions.findOneByOrFail({ id });
    this.events.publish('execution.updated', { projectId: e.projectId, execution: toSummary(e) });
    return e;
  }
}
