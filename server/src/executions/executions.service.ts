import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import {
  CreateExecutionRequest,
  CreateExecutionResponse,
  ErrorCode,
  Execution,
  ExecutionStatus,
  ExecutionSummary,
  FINAL_EXECUTION_STATUSES,
  isFinalStatus,
  LIMITS,
  ListExecutionsQuery,
} from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import { DataSource, EntityManager, In, Not, Repository } from 'typeorm';
import { ApiException, conflict, notFound } from '../common/api-exception';
import { entityInserts } from '../common/multi-row';
import { DomainEventsService } from '../common/events.service';
import { FilesService } from '../files/files.service';
import { MachinesService } from '../machines/machines.service';
import { ProjectsService } from '../projects/projects.service';
import { ExecutionEntity } from './execution.entity';
import { ExecutionLifecycleService } from './execution-lifecycle.service';
import { ExecutionSecretsService } from './execution-secrets.service';
import { toExecution, toSummary } from './execution.mapper';

const DEFAULT_TIMEOUT_SECONDS = 3600;
const DEFAULT_EXPIRES_IN_SECONDS = 24 * 3600;

/**
 * Executions as users ask for them: start a run (a row first, then the
 * push: design invariant 1), list, read, cancel. Who may see an execution
 * is decided here (findVisible) for REST and /live alike.
 */
@Injectable()
export class ExecutionsService {
  constructor(
    @InjectRepository(ExecutionEntity) private readonly executions: Repository<ExecutionEntity>,
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly lifecycle: ExecutionLifecycleService,
    private readonly machines: MachinesService,
    private readonly projects: ProjectsService,
    private readonly events: DomainEventsService,
    private readonly secrets: ExecutionSecretsService,
    private readonly files: FilesService,
  ) {}

  async create(userId: string, projectId: string, body: CreateExecutionRequest): Promise<CreateExecutionResponse> {
    return this.start(userId, projectId, body, randomUUID());
  }

  /**
   * A run made for someone by the system (a schedule's occurrence): the
   * creator must still be an operator of the project. `claim` runs inside
   * the transaction that inserts the rows; when it answers false (another
   * node holds the occurrence now) nothing is inserted and null comes back.
   */
  async createOnBehalf(
    createdBy: string,
    projectId: string,
    body: CreateExecutionRequest,
    runId: string,
    claim: (tx: EntityManager) => Promise<boolean>,
  ): Promise<CreateExecutionResponse | null> {
    return this.start(createdBy, projectId, body, runId, claim);
  }

  /**
   * What a stored run request (a schedule's) must pass before it is kept:
   * named machines of this project, secrets the project has. A 400 naming
   * the field, whatever resolveTargets would say for a run.
   */
  async checkRunSpec(projectId: string, body: CreateExecutionRequest): Promise<void> {
    try {
      await this.machines.resolveTargets(projectId, body.targets);
    } catch (err) {
      if (err instanceof ApiException && err.getStatus() === 404) throw new ApiException(400, ErrorCode.validation, err.message, err.details);
      throw err;
    }
    await this.secrets.resolveForCreate(projectId, body.secrets);
    await this.scriptOf(projectId, body).catch((err: unknown) => {
      // Stored for later: a file that is not this project's is a bad field of the request, not a missing resource.
      if (err instanceof ApiException && err.getStatus() === 404) throw new ApiException(400, ErrorCode.validation, 'no such file in this project', [{ path: 'fileId', message: 'no such file in this project' }]);
      throw err;
    });
  }

  /** The executions of these runs, by run, for history views. */
  async byRuns(runIds: string[]): Promise<Map<string, { id: string; machineId: string; status: ExecutionStatus }[]>> {
    const out = new Map<string, { id: string; machineId: string; status: ExecutionStatus }[]>();
    if (!runIds.length) return out;
    const rows = await this.executions.find({ where: { runId: In(runIds) }, select: ['id', 'runId', 'machineId', 'status', 'createdAt'], order: { createdAt: 'ASC' } });
    for (const r of rows) {
      const list = out.get(r.runId) ?? [];
      list.push({ id: r.id, machineId: r.machineId, status: r.status });
      out.set(r.runId, list);
    }
    return out;
  }

  /** Cancels every unfinished execution of a run, for the system (a schedule replacing its previous occurrence). */
  async cancelRun(runId: string, reason: string): Promise<void> {
    const open = await this.executions.find({ where: { runId, status: Not(In(FINAL_EXECUTION_STATUSES as ExecutionStatus[])) } });
    const now = new Date();
    for (const e of open) {
      if (e.status === 'queued' || e.status === 'dispatched') {
        const done = await this.lifecycle.finishIf(e.id, [e.status], { status: 'cancelled', finishedAt: now, cancelRequestedAt: now, reason });
        if (done) {
          // A dispatched start may be in flight: the agent is told too.
          if (e.status === 'dispatched') this.events.publish('execution.cancel', { machineId: e.machineId, executionId: e.id });
          continue;
        }
      }
      await this.executions.update({ id: e.id, status: Not(In(FINAL_EXECUTION_STATUSES as ExecutionStatus[])) }, { cancelRequestedAt: now });
      this.events.publish('execution.cancel', { machineId: e.machineId, executionId: e.id });
    }
  }

  private async start(userId: string, projectId: string, body: CreateExecutionRequest, runId: string): Promise<CreateExecutionResponse>;
  private async start(
    userId: string,
    projectId: string,
    body: CreateExecutionRequest,
    runId: string,
    claim?: (tx: EntityManager) => Promise<boolean>,
  ): Promise<CreateExecutionResponse | null>;
  private async start(
    userId: string,
    projectId: string,
    body: CreateExecutionRequest,
    runId: string,
    claim?: (tx: EntityManager) => Promise<boolean>,
  ): Promise<CreateExecutionResponse | null> {
    // The role and the targets are read side by side (a round trip less on every run), and the role
    // decides first: someone who may not run here learns nothing about the project's machines.
    const [role, found] = await Promise.allSettled([this.projects.requireRole(userId, projectId, 'operator'), this.machines.resolveTargets(projectId, body.targets)]);
    if (role.status === 'rejected') throw role.reason;
    if (found.status === 'rejected') throw found.reason;
    const targets = found.value;
    if (!targets.length) {
      throw new ApiException(400, ErrorCode.validation, 'no machine of this project matches the targets', [
        { path: 'targets', message: 'matches no machine' },
      ]);
    }
    // Before any row: a name the project has no secret for (another project's included) is a 400 and nothing is created.
    const resolved = await this.secrets.resolveForCreate(projectId, body.secrets);
    const source = await this.scriptOf(projectId, body);
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
        script: source.script,
        fileId: source.fileId,
        fileSha256: source.fileSha256,
        args: body.args ?? [],
        env: body.env ?? {},
        secrets: body.secrets ?? [],
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
    // Inserted by machine id: each row share-locks its machine (the foreign key) until the commit, and presence
    // locks many machines at once in id order; the same order on both sides means neither waits in a cycle.
    // Written by hand: for a fan-out's thousand rows the query builder's per-parameter work cost more than the database.
    const byMachine = [...rows].sort((a, b) => (a.machineId < b.machineId ? -1 : a.machineId > b.machineId ? 1 : 0));
    const claimed = await this.dataSource.transaction(async (tx) => {
      if (claim && !(await claim(tx))) return false;
      for (const st of entityInserts(tx, ExecutionEntity, byMachine)) await tx.query(st.sql, st.params);
      return true;
    });
    if (!claimed) return null;
    for (const e of rows) {
      this.events.publish('execution.updated', { projectId, execution: toSummary(e) });
      if (e.status === 'dispatched') this.events.publish('execution.dispatch', { machineId: e.machineId, executionIds: [e.id], payloads: [this.secrets.withResolved(e, resolved)] });
    }
    return { runId, executions: rows.map((e) => ({ id: e.id, machineId: e.machineId, status: e.status })) };
  }

  /**
   * The script to run: inline, or copied now from a stored file of kind
   * `script` of this project. Copied, not referenced: queued and repeated
   * deliveries run exactly what was chosen, whatever later happens to the
   * file (deleted, or another upload under the same name), and the row says
   * which file and which content (sha256) it was.
   */
  private async scriptOf(projectId: string, body: CreateExecutionRequest): Promise<{ script: string; fileId: string | null; fileSha256: string | null }> {
    if (body.fileId === undefined) return { script: body.script!, fileId: null, fileSha256: null };
    const refused = (message: string) => new ApiException(400, ErrorCode.validation, message, [{ path: 'fileId', message }]);
    const file = await this.files.findInProject(projectId, body.fileId).catch((err: unknown) => {
      // Another project's file is one that does not exist: the same 404 as for any missing file.
      throw err instanceof ApiException && err.getStatus() === 404 ? notFound('file') : err;
    });
    if (file.kind !== 'script') throw refused(`file ${file.name} is of kind ${file.kind}; only a file of kind script can be run`);
    const { bytes, file: read } = await this.files.readSmall(projectId, file.id, LIMITS.scriptMaxBytes);
    let script: string;
    try {
      script = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw refused(`file ${file.name} is not UTF-8 text`);
    }
    if (!script.length) throw refused(`file ${file.name} is empty`);
    return { script, fileId: read.id, fileSha256: read.sha256 };
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

  /**
   * The execution if the user may see it; 404 otherwise (existence is not leaked).
   * `vouched` answers true for a project whose membership the caller has already
   * established and keeps (a live socket in the project's room, evicted from it on
   * removal): at viewer level that project is not read again.
   */
  async findVisible(userId: string, executionId: string, min: 'viewer' | 'operator', vouched?: (projectId: string) => boolean): Promise<ExecutionEntity> {
    const e = await this.executions.findOne({ where: { id: executionId } });
    if (!e) throw notFound('execution');
    if (min === 'viewer' && vouched?.(e.projectId)) return e;
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
      const done = await this.lifecycle.finishIf(e.id, [e.status], { status: 'cancelled', finishedAt: now, cancelRequestedAt: now, reason: 'cancelled before it started' });
      if (done) {
        if (e.status === 'dispatched') this.events.publish('execution.cancel', { machineId: e.machineId, executionId: e.id });
        return toSummary(done);
      }
    }
    await this.executions.update({ id: e.id, status: Not(In(FINAL_EXECUTION_STATUSES as ExecutionStatus[])) }, { cancelRequestedAt: now });
    this.events.publish('execution.cancel', { machineId: e.machineId, executionId: e.id });
    return toSummary(await this.executions.findOneByOrFail({ id: e.id }));
  }
}
