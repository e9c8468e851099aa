import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { ErrorCode, Machine, Targets, UpdateMachineRequest } from '@kapitan/shared';
import { In, IsNull, Repository } from 'typeorm';
import { ApiException, notFound } from '../common/api-exception';
import { DomainEventsService } from '../common/events.service';
import { ProjectsService } from '../projects/projects.service';
import { MachineEntity } from './machine.entity';
import { toMachineDto } from './machine.mapper';

/** A project's machines as the API shows them: list, read, relabel, revoke; and the machines a run's targets name. */
@Injectable()
export class MachinesService {
  constructor(
    @InjectRepository(MachineEntity) private readonly machines: Repository<MachineEntity>,
    private readonly projects: ProjectsService,
    private readonly events: DomainEventsService,
  ) {}

  async list(userId: string, projectId: string): Promise<Machine[]> {
    await this.projects.requireRole(userId, projectId, 'viewer');
    const rows = await this.machines.find({ where: { projectId, revokedAt: IsNull() }, order: { createdAt: 'ASC' } });
    return rows.map(toMachineDto);
  }

  async get(userId: string, projectId: string, machineId: string): Promise<Machine> {
    await this.projects.requireRole(userId, projectId, 'viewer');
    return toMachineDto(await this.findLive(projectId, machineId));
  }

  async update(userId: string, projectId: string, machineId: string, body: UpdateMachineRequest): Promise<Machine> {
    await this.projects.requireRole(userId, projectId, 'operator');
    const m = await this.findLive(projectId, machineId);
    m.labels = body.labels;
    await this.machines.update({ id: m.id }, { labels: m.labels });
    const dto = toMachineDto(m);
    this.events.publish('machine.updated', { projectId, machine: dto });
    return dto;
  }

  /** Revoke: the credential stops working and a connected agent is dropped at once (by the gateway). */
  async revoke(userId: string, projectId: string, machineId: string): Promise<void> {
    await this.projects.requireRole(userId, projectId, 'operator');
    const m = await this.findLive(projectId, machineId);
    await this.machines.update({ id: m.id }, { revokedAt: new Date(), credentialHash: null, status: 'offline', connectionId: null });
    this.events.publish('machine.revoked', { projectId, machineId });
  }

  /** Machines of a project that a run's targets name; unknown ids are an error, not silently skipped. */
  async resolveTargets(projectId: string, targets: Targets): Promise<Pick<MachineEntity, 'id' | 'labels' | 'status'>[]> {
    // Only what a run needs (not facts), and only the named machines when they are named: a project may hold thousands.
    const select: (keyof MachineEntity)[] = ['id', 'labels', 'status'];
    const all =
      targets.machineIds && !targets.all
        ? await this.machines.find({ where: { projectId, id: In(targets.machineIds), revokedAt: IsNull() }, select })
        : await this.machines.find({ where: { projectId, revokedAt: IsNull() }, select });
    if (targets.all) return all;
    let chosen = all;
    if (targets.machineIds) {
      const byId = new Map(all.map((m) => [m.id, m]));
      const missing = targets.machineIds.filter((id) => !byId.has(id));
      if (missing.length) {
        throw new ApiException(404, ErrorCode.notFound, `machine not found: ${missing.join(', ')}`, [
          { path: 'targets.machineIds', message: `not machines of this project: ${missing.join(', ')}` },
        ]);
      }
      const wanted = new Set(targets.machineIds);
      chosen = chosen.filter((m) => wanted.has(m.id));
    }
    if (targets.labels) {
      const want = Object.entries(targets.labels);
      chosen = chosen.filter((m) => want.every(([k, v]) => m.labels[k] === v));
    }
    return chosen;
  }

  /** The project of a machine that is not revoked, or null: for routes that name only the machine. */
  async projectOf(machineId: string): Promise<string | null> {
    const m = await this.machines.findOne({ where: { id: machineId, revokedAt: IsNull() }, select: ['id', 'projectId'] });
    return m?.projectId ?? null;
  }

  private async findLive(projectId: string, machineId: string): Promise<MachineEntity> {
    const m = await this.machines.findOne({ where: { id: machineId, projectId, revokedAt: IsNull() } });
    if (!m) throw notFound('machine');
    return m;
  }
}
