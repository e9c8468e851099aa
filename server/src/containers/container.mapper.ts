import type { Container, ContainerOperation, MachineContainer, MachineDockerStatus } from '@kapitan/shared';
import { ContainerEntity, ContainerOperationEntity, DockerHostEntity } from './container.entity';

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

export function toContainerDto(c: ContainerEntity): MachineContainer {
  return {
    machineId: c.machineId,
    id: c.id,
    name: c.name,
    image: c.image,
    imageId: c.imageId,
    state: c.state,
    status: c.status,
    health: c.health,
    ports: c.ports,
    labels: c.labels,
    createdAt: c.createdAt.toISOString(),
    startedAt: iso(c.startedAt),
    finishedAt: iso(c.finishedAt),
    exitCode: c.exitCode,
    restartCount: c.restartCount,
    updatedAt: c.updatedAt.toISOString(),
  };
}

export function toContainerRow(machineId: string, projectId: string, c: Container, snapshotId: string | null, now: Date): ContainerEntity {
  return Object.assign(new ContainerEntity(), {
    machineId,
    projectId,
    id: c.id,
    name: c.name,
    image: c.image,
    imageId: c.imageId,
    state: c.state,
    status: c.status,
    health: c.health,
    ports: c.ports,
    labels: c.labels,
    createdAt: new Date(c.createdAt),
    startedAt: c.startedAt ? new Date(c.startedAt) : null,
    finishedAt: c.finishedAt ? new Date(c.finishedAt) : null,
    exitCode: c.exitCode,
    restartCount: c.restartCount,
    snapshotId,
    updatedAt: now,
  });
}

export function toDockerStatusDto(machineId: string, h: DockerHostEntity | null): MachineDockerStatus {
  if (!h) return { machineId, available: false, reason: 'the agent has not reported on Docker yet', engineVersion: null, updatedAt: null };
  return { machineId, available: h.available, reason: h.reason, engineVersion: h.engineVersion, updatedAt: h.updatedAt.toISOString() };
}

export function toOperationDto(o: ContainerOperationEntity): ContainerOperation {
  return {
    id: o.id,
    projectId: o.projectId,
    machineId: o.machineId,
    kind: o.kind,
    containerId: o.containerId,
    status: o.status,
    error: o.error,
    spec: o.spec,
    createdBy: o.createdBy,
    createdAt: o.createdAt.toISOString(),
    startedAt: iso(o.startedAt),
    finishedAt: iso(o.finishedAt),
    expiresAt: o.expiresAt.toISOString(),
  };
}
