import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { CreateEnrolmentTokenRequest, EnrolmentToken, EnrolmentTokenPurpose, ErrorCode } from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import { Repository } from 'typeorm';
import { ApiException, notFound } from '../common/api-exception';
import { mintSecret, parseSecret, secretMatches } from '../common/secrets';
import { ProjectsService } from '../projects/projects.service';
import { EnrolmentTokenEntity } from './machine.entity';
import { toTokenDto } from './machine.mapper';

/** A project's enrolment tokens: minted (shown once, stored as a hash), listed, revoked. */
@Injectable()
export class EnrolmentTokensService {
  constructor(
    @InjectRepository(EnrolmentTokenEntity) private readonly tokens: Repository<EnrolmentTokenEntity>,
    private readonly projects: ProjectsService,
  ) {}

  async createToken(userId: string, projectId: string, body: CreateEnrolmentTokenRequest): Promise<EnrolmentToken> {
    await this.projects.requireRole(userId, projectId, 'operator');
    if (body.expiresAt && new Date(body.expiresAt).getTime() <= Date.now()) {
      throw new ApiException(400, ErrorCode.validation, 'expiresAt must be in the future', [
        { path: 'expiresAt', message: 'must be in the future' },
      ]);
    }
    return this.mint(userId, projectId, 'manual', body);
  }

  /**
   * A token for another feature (a bundle, a one-line install), which has
   * checked the caller's role itself. Recorded like any other, so it is
   * listed (with its purpose) and revocable.
   */
  async mint(userId: string, projectId: string, purpose: EnrolmentTokenPurpose, body: CreateEnrolmentTokenRequest): Promise<EnrolmentToken> {
    const id = randomUUID();
    const { token, hash } = mintSecret('kpe', id);
    const row = this.tokens.create({
      id,
      projectId,
      secretHash: hash,
      prefix: token.slice(0, 12),
      labels: body.labels ?? {},
      allowAgentLabels: body.allowAgentLabels ?? false,
      expiresAt: body.expiresAt ? new Date(body.expiresAt) : null,
      maxUses: body.maxUses ?? null,
      uses: 0,
      purpose,
      createdBy: userId,
      createdAt: new Date(),
      revokedAt: null,
    });
    await this.tokens.insert(row);
    return toTokenDto(row, token);
  }

  /**
   * The token a secret names if an enrolment with it would be accepted now
   * (known, not revoked, not expired, a use left), without taking a use:
   * serving a one-line install script must not spend the enrolment it leads to.
   */
  async usable(secret: string, purpose: EnrolmentTokenPurpose): Promise<(EnrolmentToken & { projectId: string }) | null> {
    const parsed = parseSecret('kpe', secret);
    if (!parsed) return null;
    const row = await this.tokens.findOne({ where: { id: parsed.id } });
    if (!row || row.purpose !== purpose || !secretMatches(parsed.secret, row.secretHash)) return null;
    if (row.revokedAt || (row.expiresAt && row.expiresAt.getTime() <= Date.now())) return null;
    if (row.maxUses !== null && row.uses >= row.maxUses) return null;
    return { ...toTokenDto(row), projectId: row.projectId };
  }

  async listTokens(userId: string, projectId: string): Promise<EnrolmentToken[]> {
    await this.projects.requireRole(userId, projectId, 'operator');
    const rows = await this.tokens.find({ where: { projectId }, order: { createdAt: 'DESC' } });
    return rows.map((t) => toTokenDto(t));
  }

  async revokeToken(userId: string, projectId: string, tokenId: string): Promise<void> {
    await this.projects.requireRole(userId, projectId, 'operator');
    const row = await this.tokens.findOne({ where: { id: tokenId, projectId } });
    if (!row) throw notFound('enrolment token');
    if (!row.revokedAt) await this.tokens.update({ id: tokenId }, { revokedAt: new Date() });
  }
}
