import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { CreateInvitationRequest, ErrorCode, Invitation, INVITATION_TTL_HOURS } from '@kapitan/shared';
import { randomBytes, randomUUID } from 'node:crypto';
import { EntityManager, IsNull, MoreThan, Repository } from 'typeorm';
import { ApiException, notFound } from '../common/api-exception';
import { sha256 } from '../common/secrets';
import { InvitationEntity } from './invitation.entity';

function toDto(row: InvitationEntity, now = Date.now()): Invitation {
  const status = row.revokedAt ? 'revoked' : row.usedAt ? 'used' : row.expiresAt.getTime() <= now ? 'expired' : 'pending';
  return {
    id: row.id,
    prefix: row.prefix,
    status,
    createdAt: row.createdAt.toISOString(),
    expiresAt: row.expiresAt.toISOString(),
    usedAt: row.usedAt?.toISOString() ?? null,
    revokedAt: row.revokedAt?.toISOString() ?? null,
  };
}

/** One answer for every unusable invitation: which case it was is not told. */
const refused = () => new ApiException(403, ErrorCode.forbidden, 'this invitation is not valid (used, expired or revoked)');

/** Single-use, expiring sign-up links made by an admin. */
@Injectable()
export class InvitationsService {
  constructor(@InjectRepository(InvitationEntity) private readonly invitations: Repository<InvitationEntity>) {}

  async create(adminId: string, body: CreateInvitationRequest): Promise<Invitation> {
    const token = `kpi_${randomBytes(32).toString('base64url')}`;
    const now = new Date();
    const row = this.invitations.create({
      id: randomUUID(),
      tokenHash: sha256(token),
      prefix: token.slice(0, 10),
      createdBy: adminId,
      createdAt: now,
      expiresAt: new Date(now.getTime() + (body.expiresInHours ?? INVITATION_TTL_HOURS.default) * 3600_000),
      usedAt: null,
      usedBy: null,
      revokedAt: null,
    });
    await this.invitations.insert(row);
    return { ...toDto(row), token, url: `/signup?invite=${encodeURIComponent(token)}` };
  }

  async list(): Promise<Invitation[]> {
    const rows = await this.invitations.find({ order: { createdAt: 'DESC' } });
    return rows.map((r) => toDto(r));
  }

  async revoke(id: string): Promise<void> {
    const row = await this.invitations.findOne({ where: { id } });
    if (!row) throw notFound('invitation');
    if (!row.revokedAt && !row.usedAt) await this.invitations.update({ id, revokedAt: IsNull(), usedAt: IsNull() }, { revokedAt: new Date() });
  }

  /**
   * Uses the invitation up for `userId`, inside the sign-up's transaction.
   * One conditional UPDATE: of two sign-ups racing with one token, exactly
   * one changes the row; the other, and any later one, is refused. Rolled
   * back with the sign-up if that fails (the address was taken, say).
   */
  async redeem(manager: EntityManager, token: string, userId: string): Promise<void> {
    const now = new Date();
    const result = await manager
      .getRepository(InvitationEntity)
      .update({ tokenHash: sha256(token), usedAt: IsNull(), revokedAt: IsNull(), expiresAt: MoreThan(now) }, { usedAt: now, usedBy: userId });
    if (!result.affected) throw refused();
  }
}
