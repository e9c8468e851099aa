import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { API_TOKEN_PREFIX } from '@kapitan/shared';
import { IsNull, LessThan, Repository } from 'typeorm';
import type { AuthUser } from '../auth/auth-user';
import { parseSecret, secretMatches } from '../common/secrets';
import { UsersService } from '../users/users.service';
import { ApiTokenEntity } from './api-token.entity';

/** How stale `lastUsedAt` may get: one write a minute per token, not one per request. */
export const LAST_USED_RESOLUTION_MS = 60_000;

/** Turns a presented API token into a principal, or null. One job: the guard's check. */
@Injectable()
export class ApiTokenAuthService {
  constructor(
    @InjectRepository(ApiTokenEntity) private readonly tokens: Repository<ApiTokenEntity>,
    private readonly users: UsersService,
  ) {}

  /**
   * Null for anything but a live token of an existing user: malformed, unknown
   * id, wrong secret, expired (revoked ones are deleted). Every refusal looks
   * the same to the caller.
   */
  async authenticate(presented: string, now = new Date()): Promise<AuthUser | null> {
    const parsed = parseSecret(API_TOKEN_PREFIX, presented);
    if (!parsed) return null;
    const row = await this.tokens.findOne({ where: { id: parsed.id } });
    if (!row || !secretMatches(parsed.secret, row.secretHash)) return null;
    if (row.expiresAt && row.expiresAt.getTime() <= now.getTime()) return null;
    // The foreign key removes tokens with their user; this also covers a row read mid-delete.
    const user = await this.users.findById(row.userId);
    if (!user) return null;
    await this.touch(row, now);
    return { userId: row.userId, sessionId: '', isAdmin: false, email: user.email, apiToken: { id: row.id, name: row.name, userId: row.userId, projectId: row.projectId, role: row.role } };
  }

  private async touch(row: ApiTokenEntity, now: Date): Promise<void> {
    if (row.lastUsedAt && now.getTime() - row.lastUsedAt.getTime() < LAST_USED_RESOLUTION_MS) return;
    const staleBefore = new Date(now.getTime() - LAST_USED_RESOLUTION_MS);
    // Conditional, so requests racing on several nodes write once between them.
    const where = row.lastUsedAt ? { id: row.id, lastUsedAt: LessThan(staleBefore) } : { id: row.id, lastUsedAt: IsNull() };
    await this.tokens.update(where, { lastUsedAt: now });
  }
}
