import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { CreateDeployRequestSchema, CreateDistributionRequestSchema, Delivery, DeliveryKind, ErrorCode, FileKind, Targets } from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import { DataSource, In, Repository } from 'typeorm';
import type { z } from 'zod';
import { ApiException, notFound } from '../common/api-exception';
import { DomainEventsService } from '../common/events.service';
import { FilesService } from '../files/files.service';
import { ImageIndexService } from '../files/image-index.service';
import { MachinesService } from '../machines/machines.service';
import { ProjectsService } from '../projects/projects.service';
import { DeliveryEntity, DeliveryMachineEntity } from './delivery.entity';
import { toDelivery, toDispatch, toMachineDto } from './delivery.mapper';

const DEFAULT_EXPIRES_IN_SECONDS = 24 * 3600;
const DEFAULT_MODE = 0o644;

/** Which stored kinds each delivery kind sends. */
const KINDS: Record<DeliveryKind, FileKind[]> = { deploy: ['file', 'script'], distribution: ['image'] };

type DeployBody = z.output<typeof CreateDeployRequestSchema>;
type DistributionBody = z.output<typeof CreateDistributionRequestSchema>;

/**
 * Deploys and distributions as users ask for them: a row per delivery and
 * one per target machine first, then the push to the machines online
 * (design invariant 1); the rest get it at their hello.
 */
@Injectable()
export class DeliveriesService {
  constructor(
    @InjectRepository(DeliveryEntity) private readonly deliveries: Repository<DeliveryEntity>,
    @InjectRepository(DeliveryMachineEntity) private readonly parts: Repository<DeliveryMachineEntity>,
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly files: FilesService,
    private readonly imageIndexes: ImageIndexService,
    private readonly machines: MachinesService,
    private readonly projects: ProjectsService,
    private readonly events: DomainEventsService,
  ) {}

  deploy(userId: string, projectId: string, body: DeployBody): Promise<Delivery> {
    return this.create(userId, projectId, 'deploy', body.fileId, body.targets, body.expiresInSeconds, { path: body.path, mode: body.mode ?? DEFAULT_MODE, owner: body.owner ?? null });
  }

  distribute(userId: string, projectId: string, body: DistributionBody): Promise<Delivery> {
    return this.create(userId, projectId, 'distribution', body.fileId, body.targets, body.expiresInSeconds, { path: null, mode: null, owner: null });
  }

  private async create(
    userId: string,
    projectId: string,
    kind: DeliveryKind,
    fileId: string,
    targets: Targets,
    expiresInSeconds: number | undefined,
    where: Pick<DeliveryEntity, 'path' | 'mode' | 'owner'>,
  ): Promise<Delivery> {
    await this.projects.requireRole(userId, projectId, 'operator');
    const file = await this.files.findInProject(projectId, fileId);
    if (!KINDS[kind].includes(file.kind)) {
      const message = `file ${file.name} is of kind ${file.kind}; a ${kind} sends ${KINDS[kind].join(' or ')}`;
      throw new ApiException(400, ErrorCode.validation, message, [{ path: 'fileId', message }]);
    }
    const machines = await this.machines.resolveTargets(projectId, targets);
    if (!machines.length) {
      throw new ApiException(400, ErrorCode.validation, 'no machine of this project matches the targets', [{ path: 'targets', message: 'matches no machine' }]);
    }
    // Before any agent is told: an agent asks for the index as soon as it has the dispatch. Unindexable → null, sent whole.
    if (kind === 'distribution') await this.imageIndexes.ensure(projectId, file.id);
    const now = new Date();
    const d = this.deliveries.create({
      id: randomUUID(),
      projectId,
      kind,
      fileId: file.id,
      fileName: file.name,
      sha256: file.sha256,
      size: file.size,
      ...where,
      createdBy: userId,
      createdAt: now,
      expiresAt: new Date(now.getTime() + (expiresInSeconds ?? DEFAULT_EXPIRES_IN_SECONDS) * 1000),
    });
    const online = new Set(machines.filter((m) => m.status === 'online').map((m) => m.id));
    const rows = machines.map((m) =>
      this.parts.create({
        deliveryId: d.id,
        machineId: m.id,
        projectId,
        status: online.has(m.id) ? 'dispatched' : 'queued',
        receivedBytes: 0,
        reason: null,
        imageId: null,
        movedBytes: null,
        layersPresent: null,
        layersTotal: null,
        dispatchedAt: online.has(m.id) ? now : null,
        updatedAt: now,
        finishedAt: null,
      }),
    );
    // In machine id order, as executions are: each part share-locks its machine (the foreign key) until the commit,
    // and presence writes many machines at once in id order, so neither side can wait on the other in a cycle.
    const byMachine = [...rows].sort((a, b) => (a.machineId < b.machineId ? -1 : a.machineId > b.machineId ? 1 : 0));
    await this.dataSource.transaction(async (tx) => {
      await tx.getRepository(DeliveryEntity).insert(d);
      for (let i = 0; i < byMachine.length; i += 200) await tx.getRepository(DeliveryMachineEntity).insert(byMachine.slice(i, i + 200));
    });
    const dispatch = toDispatch(d);
    for (const part of rows) {
      this.events.publish('delivery.updated', { projectId, kind, machine: toMachineDto(part, d) });
      if (part.status === 'dispatched') this.events.publish('delivery.dispatch', { machineId: part.machineId, payloads: [dispatch] });
    }
    return toDelivery(d, rows);
  }

  async list(userId: string, projectId: string, kind?: DeliveryKind): Promise<Delivery[]> {
    await this.projects.requireRole(userId, projectId, 'viewer');
    const rows = await this.deliveries.find({ where: { projectId, ...(kind ? { kind } : {}) }, order: { createdAt: 'DESC' }, take: 100 });
    const parts = rows.length ? await this.parts.find({ where: { deliveryId: In(rows.map((d) => d.id)) } }) : [];
    return rows.map((d) => toDelivery(d, parts.filter((p) => p.deliveryId === d.id)));
  }

  async get(userId: string, deliveryId: string): Promise<Delivery> {
    const d = await this.deliveries.findOne({ where: { id: deliveryId } });
    if (!d) throw notFound('delivery');
    await this.projects.requireRole(userId, d.projectId, 'viewer').catch((err: unknown) => {
      throw err instanceof ApiException && err.getStatus() === 403 ? err : notFound('delivery');
    });
    return toDelivery(d, await this.parts.find({ where: { deliveryId }, order: { machineId: 'ASC' } }));
  }
}
