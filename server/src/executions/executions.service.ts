import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import {
  CreateExecutionRequest,
  CreateExecutionResponse,
  ErrorCode,
  Execution,
  ExecutionDispatch,
  ExecutionFinished,
  ExecutionLog,
  ExecutionStarted,
  ExecutionStatus,
  ExecutionSummary,
  FINAL_EXECUTION_STATUSES,
  isFinalStatus,
  LIMITS,
  ListExecutionsQuery,
  OutputChunk,
} from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import { DataSource, In, LessThan, MoreThanOrEqual, Not, Repository } from 'typeorm';
import { ApiException, conflict, notFound } from '../common/api-exception';
import { DomainEventsService } from '../common/events.service';
import { APP_CONFIG, AppConfig } from '../config/config';
import { MachinesService } from '../machines/machines.service';
import { ProjectsService } from '../projects/projects.service';
import { ExecutionChunkEntity, ExecutionEntity } from './execution.entity';
import { OutputWriter } from './output-writer.service';

const DEFAULT_TIMEOUT_SECONDS = 3600;
const DEFAULT_EXPIRES_IN_SECONDS = 24 * 3600;
const SWEEP_EVERY_MS = 5_000;
const ACTIVE: ExecutionStatus[] = ['queued', 'dispatched', 'running'];

export function toSummary(e: ExecutionEntity): ExecutionSummary {
  return {
    id: e.id,
    runId: e.runId,
    projectId: e.projectId,
    machineId: e.machineId,
    status: e.status,
    exitCode: e.exitCode,
    signal: e.signal,
    reason: e.reason,
    createdAt: e.createdAt.toISOString(),
    dispatchedAt: e.dispatchedAt?.toISOString() ?? null,
    startedAt: e.startedAt?.toISOString() ?? null,
    finishedAt: e.finishedAt?.toISOString() ?? null,
    durationMs: e.startedAt && e.finishedAt ? e.finishedAt.getTime() - e.startedAt.getTime() : null,
  };
}

function toExecution(e: ExecutionEntity): Execution {
  return {
    ...toSummary(e),
    script: e.script,
    args: e.args,
    env: e.env,
    cwd: e.cwd,
    timeoutSeconds: e.timeoutSeconds,
    expiresAt: e.expiresAt.toISOString(),
    createdBy: e.createdBy,
    lastSeq: e.lastSeq,
  };
}

function toDispatch(e: ExecutionEntity): ExecutionDispatch {
  return { executionId: e.id, script: e.script, args: e.args, env: e.env, cwd: e.cwd, timeoutSeconds: e.timeoutSeconds };
}

/** What the agent gateway should send a machine that just said hello. */
export interface HelloPlan {
  dispatch: ExecutionDispatch[];
  cancel: string[];
}

/**
 * Executions: a row first, then the push (invariant 1); one start and one
 * finish per execution, whatever the agent repeats; output stored once per
 * (execution, seq) and forwarded live before it is stored.
 */
@Injectable()
export class ExecutionsService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(ExecutionsService.name);
  private sweepTimer: NodeJS.Timeout | null = null;

  constructor(
    @InjectRepository(ExecutionEntity) private readonly executions: Repository<ExecutionEntity>,
    @InjectRepository(ExecutionChunkEntity) private readonly chunks: Repository<ExecutionChunkEntity>,
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly writer: OutputWriter,
    private readonly machines: MachinesService,
    private readonly projects: ProjectsService,
    private readonly events: DomainEventsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onModuleInit(): void {
    this.sweepTimer = setInterval(() => {
      this.sweep().catch((err) => this.logger.warn({ err: String(err) }, 'sweep failed'));
    }, SWEEP_EVERY_MS);
    this.sweepTimer.unref();
  }

  onModuleDestroy(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
  }

  // ---------------------------------------------------------------- REST

  async create(userId: string, projectId: string, body: CreateExecutionRequest): Promise<CreateExecutionResponse> {
    await this.projects.requireRole(userId, projectId, 'operator');
    const targets = await this.machines.resolveTargets(projectId, body.targets);
    if (!targets.length) {
      throw new ApiException(400, ErrorCode.validation, 'no machine of this project matches the targets', [
        { path: 'targets', message: 'matches no machine' },
      ]);
    }
    const runId = randomUUID();
    const now = new Date();
    const online = new Set(targets.filter((m) => m.status === 'online').map((m) => m.id));
    const rows = targets.map((m) =>
      this.executions.create({
        id: randomUUID(),
        runId,
        projectId,
        machineId: m.id,
        // Marked dispatched only when the push can reach a connected agent; the rest wait for its hello.
        status: online.has(m.id) ? 'dispatched' : 'queued',
        script: body.script,
        args: body.args ?? [],
        env: body.env ?? {},
        cwd: body.cwd ?? null,
        timeoutSeconds: body.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS,
        expiresAt: new Date(now.getTime() + (body.expiresInSeconds ?? DEFAULT_EXPIRES_IN_SECONDS) * 1000),
        createdBy: userId,
        createdAt: now,
        dispatchedAt: online.has(m.id) ? now : null,
        startedAt: null,
        finishedAt: null,
        cancelRequestedAt: null,
        exitCode: null,
        signal: null,
        reason: null,
        lastSeq: null,
      }),
    );
    await this.dataSource.transaction(async (tx) => {
      for (let i = 0; i < rows.length; i += 200) await tx.getRepository(ExecutionEntity).insert(rows.slice(i, i + 200));
    });
    for (const e of rows) {
      this.events.publish('execution.updated', { projectId, execution: toSummary(e) });
      if (e.status === 'dispatched') this.events.publish('execution.dispatch', { machineId: e.machineId, executionIds: [e.id], payloads: [toDispatch(e)] });
    }
    return { runId, executions: rows.map((e) => ({ id: e.id, machineId: e.machineId, status: e.status })) };
  }

  async list(userId: string, projectId: string, q: ListExecutionsQuery): Promise<ExecutionSummary[]> {
    await this.projects.requireRole(userId, projectId, 'viewer');
    const where: Record<string, unknown> = { projectId };
    if (q.machineId) where.machineId = q.machineId;
    if (q.runId) where.runId = q.runId;
    if (q.status) where.status = q.status;
    const rows = await this.executions.find({
      where,
      order: { createdAt: 'DESC' },
      take: q.limit ?? 100,
      select: ['id', 'runId', 'projectId', 'machineId', 'status', 'exitCode', 'signal', 'reason', 'createdAt', 'dispatchedAt', 'startedAt', 'finishedAt'],
    });
    return rows.map(toSummary);
  }

  async get(userId: string, executionId: string): Promise<Execution> {
    return toExecution(await this.findVisible(userId, executionId, 'viewer'));
  }

  /** The execution if the user may see it; 404 otherwise (existence is not leaked). */
  async findVisible(userId: string, executionId: string, min: 'viewer' | 'operator'): Promise<ExecutionEntity> {
    const e = await this.executions.findOne({ where: { id: executionId } });
    if (!e) throw notFound('execution');
    await this.projects.requireRole(userId, e.projectId, min).catch((err: unknown) => {
      throw err instanceof ApiException && err.getStatus() === 403 ? err : notFound('execution');
    });
    return e;
  }

  async cancel(userId: string, executionId: string): Promise<ExecutionSummary> {
    const e = await this.findVisible(userId, executionId, 'operator');
    if (isFinalStatus(e.status)) throw conflict(`execution already ${e.status}`);
    const now = new Date();
    if (e.status === 'queued' || e.status === 'dispatched') {
      // Not started: it never will. The agent is told too, in case the start is in flight.
      const done = await this.finishIf(e.id, [e.status], { status: 'cancelled', finishedAt: now, cancelRequestedAt: now, reason: 'cancelled before it started' });
      if (done) {
        if (e.status === 'dispatched') this.events.publish('execution.cancel', { machineId: e.machineId, executionId: e.id });
        return toSummary(done);
      }
    }
    await this.executions.update({ id: e.id, status: Not(In(FINAL_EXECUTION_STATUSES as ExecutionStatus[])) }, { cancelRequestedAt: now });
    this.events.publish('execution.cancel', { machineId: e.machineId, executionId: e.id });
    return toSummary(await this.executions.findOneByOrFail({ id: e.id }));
  }

  /** A page of the stored log, with the gaps in it named. */
  async log(userId: string, executionId: string, fromSeq = 0, limit: number = LIMITS.logPageMax): Promise<ExecutionLog> {
    const e = await this.findVisible(userId, executionId, 'viewer');
    return this.logPage(e, fromSeq, limit);
  }

  async logPage(e: ExecutionEntity, fromSeq: number, limit: number): Promise<ExecutionLog> {
    const rows = await this.chunks.find({
      where: { executionId: e.id, seq: MoreThanOrEqual(fromSeq) },
      order: { seq: 'ASC' },
      take: limit,
    });
    const gaps: { fromSeq: number; toSeq: number }[] = [];
    let expect = fromSeq;
    for (const r of rows) {
      if (r.seq > expect) gaps.push({ fromSeq: expect, toSeq: r.seq - 1 });
      expect = r.seq + 1;
    }
    const last = e.lastSeq;
    const pageFull = rows.length === limit;
    if (!pageFull && last !== null && expect <= last) gaps.push({ fromSeq: expect, toSeq: last });
    const complete = isFinalStatus(e.status) && !pageFull && gaps.length === 0 && (last === null || expect > last || last < fromSeq);
    return {
      executionId: e.id,
      chunks: rows.map((r) => ({ seq: r.seq, stream: r.stream, data: r.data })),
      gaps,
      complete,
      nextSeq: expect,
    };
  }

  /**
   * History for a viewer who just joined the live room: chunks this node
   * already forwarded are committed first, so history and live tail meet with
   * no gap. (A chunk still in another node's batch can be missing; the
   * client asks again for any gap it sees.)
   */
  async historyForJoin(e: ExecutionEntity, fromSeq: number, limit: number): Promise<ExecutionLog> {
    await this.writer.flush().catch(() => undefined);
    return this.logPage(e, fromSeq, limit);
  }

  /** The whole log as text, page by page, so a 100 MB log never sits in memory. */
  async *logText(userId: string, executionId: string): AsyncGenerator<string> {
    const e = await this.findVisible(userId, executionId, 'viewer');
    let from = 0;
    for (;;) {
      const page = await this.logPage(e, from, 1000);
      let expect = from;
      for (const c of page.chunks) {
        if (c.seq > expect) yield `\n[kapitan: output chunks ${expect}-${c.seq - 1} are missing]\n`;
        yield c.data;
        expect = c.seq + 1;
      }
      if (page.chunks.length < 1000) {
        const tailGap = page.gaps.find((g) => g.fromSeq >= expect);
        if (tailGap) yield `\n[kapitan: output chunks ${tailGap.fromSeq}-${tailGap.toSeq} are missing]\n`;
        return;
      }
      from = page.nextSeq;
    }
  }

  // ---------------------------------------------------------------- agent side

  /** Does this execution belong to this machine? The gateway caches the answer per socket. */
  async belongsTo(executionId: string, machineId: string): Promise<boolean> {
    return this.executions.exists({ where: { id: executionId, machineId } });
  }

  /** Which of `executionIds` are this machine's, as stored: the agent's own list is only a claim. */
  async ownedBy(machineId: string, executionIds: readonly string[]): Promise<Set<string>> {
    const mine = new Set<string>();
    for (let i = 0; i < executionIds.length; i += 500) {
      const rows = await this.executions.find({ where: { machineId, id: In(executionIds.slice(i, i + 500)) }, select: ['id'] });
      for (const r of rows) mine.add(r.id);
    }
    return mine;
  }

  /**
   * A machine said hello: what it should (re)run and cancel. Work it still
   * holds is left alone; work the server thinks runs but the agent no longer
   * knows is lost; cancel-requested work that never started is cancelled.
   */
  async planForHello(machineId: string, activeIds: readonly string[]): Promise<HelloPlan> {
    const active = new Set(activeIds);
    const now = new Date();
    const open = await this.executions.find({ where: { machineId, status: In(ACTIVE) }, order: { createdAt: 'ASC' } });
    const plan: HelloPlan = { dispatch: [], cancel: [] };
    for (const e of open) {
      if (e.status === 'running' && !active.has(e.id)) {
        await this.finishIf(e.id, ['running'], { status: 'lost', finishedAt: now, reason: 'the agent came back without this execution (its state was lost)' }, e);
      } else if (e.status !== 'running' && e.expiresAt <= now) {
        await this.finishIf(e.id, [e.status], { status: 'expired', finishedAt: now, reason: 'the machine stayed offline until the work expired' }, e);
      } else if (e.status !== 'running' && e.cancelRequestedAt) {
        await this.finishIf(e.id, [e.status], { status: 'cancelled', finishedAt: now, reason: 'cancelled before it started' }, e);
      } else if (e.status === 'running' && e.cancelRequestedAt) {
        plan.cancel.push(e.id);
      } else if (e.status !== 'running') {
        plan.dispatch.push(toDispatch(e));
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
    return rows.map(toDispatch);
  }

  /** The one start of an execution. Returns false when it must not run (cancelled or finished meanwhile). */
  async started(machineId: string, p: ExecutionStarted): Promise<boolean> {
    const e = await this.executions.findOne({ where: { id: p.executionId, machineId } });
    if (!e) return false;
    if (e.status === 'running') return true; // a repeated start: accepted once, acknowledged always
    if (isFinalStatus(e.status)) return false;
    const startedAt = new Date(p.startedAt);
    const r = await this.executions.update({ id: e.id, status: In(['queued', 'dispatched']) }, { status: 'running', startedAt, dispatchedAt: e.dispatchedAt ?? startedAt });
    if (r.affected) {
      Object.assign(e, { status: 'running', startedAt, dispatchedAt: e.dispatchedAt ?? startedAt });
      this.events.publish('execution.updated', { projectId: e.projectId, execution: toSummary(e) });
    }
    return true;
  }

  /** Forward at once (invariant 3), then store; resolves when stored. */
  async output(executionId: string, chunks: OutputChunk[]): Promise<void> {
    this.events.publish('execution.output', { executionId, chunks });
    await this.writer.write(executionId, chunks);
  }

  /** The one finish of an execution; later reports of it change nothing. */
  async finished(machineId: string, p: ExecutionFinished): Promise<void> {
    // Chunks sent before the finish may still sit in the batch: commit them first, so a final log is whole.
    await this.writer.flush();
    const e = await this.executions.findOne({ where: { id: p.executionId, machineId } });
    if (!e || isFinalStatus(e.status)) return;
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
        startedAt: e.startedAt ?? (p.status === 'lost' ? null : finishedAt),
      },
      e,
    );
  }

  // ---------------------------------------------------------------- upkeep

  /** Expire queued work past its time; lose running work of machines gone for too long. Idempotent on every node. */
  async sweep(): Promise<void> {
    const now = new Date();
    const expired = await this.executions.find({ where: { status: In(['queued', 'dispatched']), expiresAt: LessThan(now) }, take: 1000 });
    for (const e of expired) {
      await this.finishIf(e.id, ['queued', 'dispatched'], { status: 'expired', finishedAt: now, reason: 'the machine stayed offline until the work expired' });
    }
    const running = await this.executions.find({ where: { status: 'running' }, select: ['id', 'machineId'], take: 5000 });
    const gone = await this.machines.offlineSince([...new Set(running.map((e) => e.machineId))], this.config.lostAfterSeconds);
    for (const e of running.filter((x) => gone.has(x.machineId))) {
      await this.finishIf(e.id, ['running'], {
        status: 'lost',
        finishedAt: now,
        reason: `the agent has been offline for more than ${this.config.lostAfterSeconds} s`,
      });
    }
  }

  /** Conditional transition: applies only from `from`, so two nodes or two reports cannot both apply it. */
  private async finishIf(id: string, from: ExecutionStatus[], patch: Partial<ExecutionEntity>, known?: ExecutionEntity): Promise<ExecutionEntity | null> {
    const r = await this.executions.update({ id, status: In(from) }, patch);
    if (!r.affected) return null;
    // The row as it was read just before, with the patch that was applied: what the summary shows cannot have changed otherwise.
    const e = known ? Object.assign(known, patch) : await this.executions.findOneByOrFail({ id });
    this.events.publish('execution.updated', { projectId: e.projectId, execution: toSummary(e) });
    return e;
  }
}
