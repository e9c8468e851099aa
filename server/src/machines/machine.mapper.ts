import type { EnrolmentToken, Labels, Machine } from '@kapitan/shared';
import { EnrolmentTokenEntity, MachineEntity } from './machine.entity';

export function toMachineDto(m: MachineEntity): Machine {
  return {
    id: m.id,
    projectId: m.projectId,
    hostname: m.hostname,
    status: m.status,
    labels: m.labels,
    facts: m.facts,
    policy: m.policy ?? null,
    lastSeenAt: m.lastSeenAt?.toISOString() ?? null,
    connectedAt: m.connectedAt?.toISOString() ?? null,
    createdAt: m.createdAt.toISOString(),
  };
}

export function toTokenDto(t: EnrolmentTokenEntity, token?: string): EnrolmentToken {
  return {
    id: t.id,
    ...(token ? { token } : {}),
    prefix: t.prefix,
    expiresAt: t.expiresAt?.toISOString() ?? null,
    maxUses: t.maxUses,
    uses: t.uses,
    purpose: t.purpose ?? 'manual',
    labels: t.labels,
    allowAgentLabels: !!t.allowAgentLabels,
    revokedAt: t.revokedAt?.toISOString() ?? null,
    createdAt: t.createdAt.toISOString(),
  };
}

/** The machine a credential belongs to, as the agent gateway binds it to a socket. */
export interface MachineIdentity {
  machineId: string;
  projectId: string;
}

/** What presence needs to announce a machine without reading it again: read at the handshake, dropped after hello. */
export interface MachineProfile {
  labels: Labels;
  createdAt: Date;
}
