import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Container, ContainersChanged, ContainersSnapshot, DockerStatus, MachineContainer, MachineDockerStatus } from '@kapitan/shared';
import { In, Repository } from 'typeorm';
import { notFound } from '../common/api-exception';
import { DomainEventsService } from '../common/events.service';
import { MachinesService } from '../machines/machines.service';
import { ProjectsService } from '../projects/projects.service';
import { ContainerEntity, DockerHostEntity } from './container.entity';
import { toContainerDto, toContainerRow, toDockerStatusDto } from './container.mapper';

/**
 * The containers of every machine as its agent last reported them: a
 * snapshot replaces (at its last part, what no part named is gone), a change
 * patches. Every write is keyed by the machine bound to the reporting
 * socket, so an agent can only write its own machine's rows (design
 * invariant 4).
 */
@Injectable()
export class ContainerStateService {
  constructor(
    @InjectRepository(ContainerEntity) private readonly containers: Repository<ContainerEntity>,
    @InjectRepository(DockerHostEntity) private readonly hosts: Repository<DockerHostEntity>,
    private readonly machines: MachinesService,
    private readonly projects: ProjectsService,
    private readonly events: DomainEventsService,
  ) {}

  // ---------------------------------------------------------------- REST

  /** The machine's project, once the caller has `role` in it; 404 for a machine unknown or not visible. */
  async visibleMachine(userId: string, machineId: string, role: 'viewer' | 'operator'): Promise<string> {
    const projectId = await this.machines.projectOf(machineId);
    if (!projectId) throw notFound('machine');
    try {
      await this.projects.requireRole(userId, projectId, role);
    } catch (err) {
      // not a member: the machine does not exist for them (threat model T8)
      if ((err as { getStatus?: () => number }).getStatus?.() === 404) throw notFound('machine');
      throw err;
    }
    return projectId;
  }

  async list(userId: string, machineId: string): Promise<MachineContainer[]> {
    await this.visibleMachine(userId, machineId, 'viewer');
    const rows = await this.containers.find({ where: { machineId }, order: { name: 'ASC' } });
    return rows.map(toContainerDto);
  }

  async dockerStatus(userId: string, machineId: string): Promise<MachineDockerStatus> {
    await this.visibleMachine(userId, machineId, 'viewer');
    return toDockerStatusDto(machineId, await this.hosts.findOne({ where: { machineId } }));
  }

  /** Which of `ids` are containers of this machine, as last reported (the metrics feature stores only those). */
  async knownIds(machineId: string, ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.containers.find({ select: { id: true }, where: { machineId, id: In([...ids]) } });
    return new Set(rows.map((r) => r.id));
  }

  /** Is this container on this machine, as last reported? */
  async has(machineId: string, containerId: string): Promise<boolean> {
    return (await this.containers.count({ where: { machineId, id: containerId } })) > 0;
  }

  // ---------------------------------------------------------------- agent reports

  async setStatus(machineId: string, projectId: string, s: DockerStatus): Promise<void> {
    const row = Object.assign(new DockerHostEntity(), { machineId, projectId, ...s, updatedAt: new Date() });
    await this.hosts.upsert(row, ['machineId']);
    this.events.publish('docker.status', { projectId, status: toDockerStatusDto(machineId, row) });
  }

  async snapshotPart(machineId: string, projectId: string, p: ContainersSnapshot): Promise<void> {
    await this.upsert(machineId, projectId, p.containers, p.snapshotId);
    if (!p.last) return;
    await this.containers
      .createQueryBuilder()
      .delete()
      .where('machineId = :machineId AND (snapshotId IS NULL OR snapshotId <> :snapshotId)', { machineId, snapshotId: p.snapshotId })
      .execute();
    const rows = await this.containers.find({ where: { machineId }, order: { name: 'ASC' } });
    this.events.publish('containers.updated', { projectId, machineId, snapshot: true, containers: rows.map(toContainerDto), removed: [] });
  }

  async changed(machineId: string, projectId: string, p: ContainersChanged): Promise<void> {
    const rows = await this.upsert(machineId, projectId, p.containers, null);
    if (p.removed.length) await this.containers.delete({ machineId, id: In(p.removed) });
    this.events.publish('containers.updated', { projectId, machineId, snapshot: false, containers: rows.map(toContainerDto), removed: p.removed });
  }

  private async upsert(machineId: string, projectId: string, list: Container[], snapshotId: string | null): Promise<ContainerEntity[]> {
    if (!list.length) return [];
    const now = new Date();
    // A patched row loses its snapshot mark; that is harmless, as the next snapshot marks every container it names.
    const rows = list.map((c) => toContainerRow(machineId, projectId, c, snapshotId, now));
    await this.containers.upsert(rows, ['machineId', 'id']);
    return rows;
  }
}
