import type { Delivery, DeliveryDispatch, DeliveryMachine } from '@kapitan/shared';
import { DeliveryEntity, DeliveryMachineEntity } from './delivery.entity';

export function toMachineDto(m: DeliveryMachineEntity, d: Pick<DeliveryEntity, 'size'>): DeliveryMachine {
  return {
    deliveryId: m.deliveryId,
    machineId: m.machineId,
    status: m.status,
    receivedBytes: m.receivedBytes,
    totalBytes: d.size,
    reason: m.reason,
    imageId: m.imageId,
    movedBytes: m.movedBytes,
    layers: m.layersTotal === null || m.layersPresent === null ? null : { present: m.layersPresent, total: m.layersTotal },
    updatedAt: m.updatedAt.toISOString(),
    finishedAt: m.finishedAt?.toISOString() ?? null,
  };
}

export function toDelivery(d: DeliveryEntity, machines: DeliveryMachineEntity[]): Delivery {
  return {
    id: d.id,
    projectId: d.projectId,
    kind: d.kind,
    file: { id: d.fileId, name: d.fileName, sha256: d.sha256, size: d.size },
    path: d.path,
    mode: d.mode,
    owner: d.owner,
    createdBy: d.createdBy,
    createdAt: d.createdAt.toISOString(),
    expiresAt: d.expiresAt.toISOString(),
    machines: machines.map((m) => toMachineDto(m, d)),
  };
}

export function toDispatch(d: DeliveryEntity): DeliveryDispatch {
  const file = { fileId: d.fileId, sha256: d.sha256, size: d.size };
  if (d.kind === 'distribution') return { kind: 'distribution', deliveryId: d.id, file };
  return { kind: 'deploy', deliveryId: d.id, file, path: d.path!, mode: d.mode ?? 0o644, owner: d.owner };
}
