import { Injectable, OnModuleInit } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { ContainerAction, ContainerOperation, ContainerOperationDispatch, ContainerOperationFinished, ContainerOperationStarted, CreateContainerRequest } from '@kapitan/shared';
import { ErrorCode } from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import { In, LessThan, Repository } from 'typeorm';
import { ApiException, notFound } from '../common/api-exception';
import { DomainEventsService } from '../common/events.service';
import { SchedulerService } from '../common/scheduler.service';
import { TickBatcher } from '../common/tick-batcher';
import { ContainerOperationEntity } from './container.entity';
import { toOperationDto } from './container.mapper';
import { ContainerStateService } from './container-state.service';

/** A container operation not received by its agent within this long fails instead of acting late. */
export const OPERATION_EXPIRES_MS = 10 * 60_000;
export const OPERATION_SWEEP_EVERY_MS = 15_000;
/** Operations sent again at one hello at most. */
const PENDING_PER_HELLO = 1000;
const EXPIRED_REASON = 'expired: the agent did not receive it in time';

const toDispatch = (o: ContainerOperationEntity): ContainerOperationDispatch => ({ operationId: o.id, kind: o.kind, containerId: o.containerId, spec: o.spec });

/**
 * Container operations: a row first (queued), then the push to the agent
 * (design invariant 1); at least once (again at every hello while it is not
 * finished), applied once by the agent. Each step is a conditional UPDATE,
 * so a repeated or late report changes nothing.
 */
@Injectable()
export class ContainerOperationsService implements OnModuleInit {
  constructor(
    @InjectRepository(ContainerOperationEntity) private readonly ops: Repository<ContainerOperationEntity>,
    private readonly state: ContainerStateService,
    private readonly events: DomainEventsService,
    private readonly scheduler: SchedulerService,
  ) {}

  onModuleInit(): void {
    // An operation for a machine that stays away must not act when it comes back hours later.
    this.scheduler.every('container-operations.expire', OPERATION_SWEEP_EVERY_MS, async () => void (await this.expire()));
  }

  /** Queued operations past their expiry fail (every node may run this at once: the updates are conditional). */
  async expire(now = new Date()): Promise<number> {
    const expired = await this.ops.find({ where: { status: 'queued', expiresAt: LessThan(now) }, select: ['id'], take: 1000 });
    for (const o of expired) await this.finish(o.id, 'failed', EXPIRED_REASON, null, now, ['queued']);
    return expired.length;
  }

  async action(userId: string, machineId: string, containerId: string, action: ContainerAction): Promise<ContainerOperation> {
    const projectId = await this.state.visibleMachine(userId, machineId, 'operator');
    if (!(await this.state.has(machineId, containerId))) {
      throw new ApiException(404, ErrorCode.notFound, 'container not found on this machine', [{ path: 'containerId', message: 'no such container on this machine' }]);
    }
    return this.enqueue(userId, projectId, machineId, action, containerId, null);
  }

  async create(userId: string, machineId: string, spec: CreateContainerRequest): Promise<ContainerOperation> {
    const projectId = await this.state.visibleMachine(userId, machineId, 'operator');
    return this.enqueue(userId, projectId, machineId, 'create', null, spec);
  }

  async get(userId: string, operationId: string): Promise<ContainerOperation> {
    const o = await this.ops.findOne({ where: { id: operationId } });
    if (!o) throw notFound('container operation');
    try {
      await this.state.visibleMachine(userId, o.machineId, 'viewer');
    } catch {
      throw notFound('container operation');
    }
    return toOperationDto(o);
  }

  async list(userId: string, machineId: string, limit = 50): Promise<ContainerOperation[]> {
    await this.state.visibleMachine(userId, machineId, 'viewer');
    return (await this.ops.find({ where: { machineId }, order: { createdAt: 'DESC' }, take: limit })).map(toOperationDto);
  }

  private async enqueue(
    userId: string,
    projectId: string,
    machineId: string,
    kind: ContainerOperation['kind'],
    containerId: string | null,
    spec: CreateContainerRequest | null,
  ): Promise<ContainerOperation> {
    const now = new Date();
    const row = Object.assign(new ContainerOperationEntity(), {
      id: randomUUID(),
      projectId,
      machineId,
      kind,
      containerId,
      status: 'queued' as const,
      error: null,
      spec,
      createdBy: userId,
      createdAt: now,
      startedAt: null,
      finishedAt: null,
      expiresAt: new Date(now.getTime() + OPERATION_EXPIRES_MS),
    });
    await this.ops.insert(row);
    const dto = toOperationDto(row);
    this.events.publish('container-operation.updated', { projectId, operation: dto });
    this.events.publish('container-operation.dispatch', { machineId, dispatch: toDispatch(row) });
    return dto;
  }

  // ---------------------------------------------------------------- agent side

  async ownedBy(machineId: string, ids: readonly string[]): Promise<Set<string>> {
    const rows = await this.ops.find({ where: { id: In([...ids]), machineId }, select: ['id'] });
    return new Set(rows.map((r) => r.id));
  }

  /** At a hello: what is still owed to the machine (sent again; the agent applies each once), after failing what expired. */
  async pendingFor(machineId: string): Promise<ContainerOperationDispatch[]> {
    return (await this.pendingByMachine.get(machineId)) ?? [];
  }

  /**
   * The hellos of one turn (a reconnect storm) share one read. What expired
   * among these machines' operations fails here, as the sweep would fail it,
   * so it is never sent; the rest of the table is the sweep's.
   */
  private readonly pendingByMachine = new TickBatcher<string, ContainerOperationDispatch[]>(
    async (machineIds) => {
      const open = new Map<string, ContainerOperationDispatch[]>();
      const now = new Date();
      for (const o of await this.ops.find({ where: { machineId: In(machineIds), status: In(['queued', 'running']) }, order: { createdAt: 'ASC' } })) {
        if (o.status === 'queued' && o.expiresAt < now) {
          await this.finish(o.id, 'failed', EXPIRED_REASON, null, now, ['queued']);
          continue;
        }
        let list = open.get(o.machineId);
        if (!list) open.set(o.machineId, (list = []));
        if (list.length < PENDING_PER_HELLO) list.push(toDispatch(o));
      }
      return open;
    },
    { max: 200, copy: (list) => [...list] },
  );

  async started(p: ContainerOperationStarted): Promise<void> {
    const r = await this.ops.update({ id: p.operationId, status: 'queued' }, { status: 'running', startedAt: new Date(p.startedAt) });
    if (r.affected) await this.publish(p.operationId);
  }

  async finished(p: ContainerOperationFinished): Promise<void> {
    await this.finish(p.operationId, p.status, p.error, p.containerId, new Date(p.finishedAt), ['queued', 'running']);
  }

  private async finish(
    id: string,
    status: 'succeeded' | 'failed' | 'refused',
    error: string | null,
    containerId: string | null,
    at: Date,
    from: ContainerOperationEntity['status'][],
  ): Promise<void> {
    const set: Partial<ContainerOperationEntity> = { status, error, finishedAt: at };
    if (containerId) set.containerId = containerId;
    const r = await this.ops.update({ id, status: In(from) }, set);
    if (r.affected) await this.publish(id);
  }

  private async publish(id: string): Promise<void> {
    const o = await this.ops.findOne({ where: { id } });
    if (o) this.events.publish('container-operation.updated', { projectId: o.projectId, operation: toOperationDto(o) });
  }
}
