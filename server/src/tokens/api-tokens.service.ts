import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { API_TOKEN_LIMITS, API_TOKEN_PREFIX, ApiToken, CreateApiTokenRequest, CreatedApiToken } from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import { Repository } from 'typeorm';
import { conflict, notFound } from '../common/api-exception';
import { mintSecret } from '../common/secrets';
import { ProjectsService } from '../projects/projects.service';
import { ApiTokenEntity } from './api-token.entity';
import { noteRequestProject } from '../common/request-principal';

function toDto(row: ApiTokenEntity, projectName: string | null): ApiToken {
  return {
    id: row.id,
    name: row.name,
    projectId: row.projectId,
    projectName,
    role: row.role,
    createdAt: row.createdAt.toISOString(),
    lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
    expiresAt: row.expiresAt?.toISOString() ?? null,
  };
}

/** A user's API tokens: mint, list, revoke. Only sessions reach here (the controller is session-only). */
@Injectable()
export class ApiTokensService {
  constructor(
    @InjectRepository(ApiTokenEntity) private readonly tokens: Repository<ApiTokenEntity>,
    private readonly projects: ProjectsService,
  ) {}

  /** The caller must hold at least `role` in the project: a token never grants more than its maker has. */
  async create(userId: string, body: CreateApiTokenRequest): Promise<CreatedApiToken> {
    await this.projects.requireRole(userId, body.projectId, body.role);
    if ((await this.tokens.count({ where: { userId } })) >= API_TOKEN_LIMITS.perUserMax) {
      throw conflict(`at most ${API_TOKEN_LIMITS.perUserMax} API tokens per user; revoke one first`);
    }
    const id = randomUUID();
    const { token, hash } = mintSecret(API_TOKEN_PREFIX, id);
    const row = this.tokens.create({
      id,
      userId,
      projectId: body.projectId,
      name: body.name,
      role: body.role,
      secretHash: hash,
      createdAt: new Date(),
      lastUsedAt: null,
      expiresAt: body.expiresAt ? new Date(body.expiresAt) : null,
    });
    await this.tokens.insert(row);
    const project = await this.projects.get(userId, body.projectId);
    return { ...toDto(row, project.name), token };
  }

  async list(userId: string): Promise<ApiToken[]> {
    const rows = await this.tokens.find({ where: { userId }, order: { createdAt: 'DESC' } });
    // Names of the projects the user still belongs to; a token of a project they left shows none.
    const names = new Map((await this.projects.list(userId)).map((p) => [p.id, p.name]));
    return rows.map((r) => toDto(r, names.get(r.projectId) ?? null));
  }

  /** Deleting the row is the revocation: the next request with it finds nothing and answers 401. */
  async revoke(userId: string, id: string): Promise<void> {
    const row = await this.tokens.findOne({ where: { id, userId } });
    const { affected } = row ? await this.tokens.delete({ id, userId }) : { affected: 0 };
    if (!affected) throw notFound('API token');
    // The revocation belongs in that project's audit log, like the creation.
    noteRequestProject(row!.projectId);
  }
}
