import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { CreateSecretRequest, ErrorCode, Secret, SECRET_LIMITS, SecretActor, UpdateSecretRequest } from '@kapitan/shared';
import { In, Repository } from 'typeorm';
import { ApiException, conflict, notFound } from '../common/api-exception';
import { ProjectsService } from '../projects/projects.service';
import { isUniqueViolation, UsersService } from '../users/users.service';
import { SecretCipher, SecretUnreadableError } from './secret-cipher';
import { SecretEntity } from './secret.entity';

/** What a run gets from its secrets: the environment to inject, and the strings to mask in its output. */
export interface ResolvedSecrets {
  env: Record<string, string>;
  masks: string[];
}

/**
 * Project secrets: owners write them, every member sees their names, and
 * nobody reads a value back through the API. The one way out of a value is
 * `resolve`, for a run that references it.
 */
@Injectable()
export class SecretsService {
  private readonly logger = new Logger(SecretsService.name);

  constructor(
    @InjectRepository(SecretEntity) private readonly secrets: Repository<SecretEntity>,
    private readonly cipher: SecretCipher,
    private readonly projects: ProjectsService,
    private readonly users: UsersService,
  ) {}

  async list(userId: string, projectId: string): Promise<Secret[]> {
    await this.projects.requireRole(userId, projectId, 'viewer');
    const rows = await this.secrets.find({ where: { projectId } });
    // Sorted here, by code point: MySQL's collation and SQLite's would order "_" and digits differently.
    rows.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return this.toDtos(rows);
  }

  async create(userId: string, projectId: string, body: CreateSecretRequest): Promise<Secret> {
    await this.projects.requireRole(userId, projectId, 'owner');
    if (await this.secrets.exists({ where: { projectId, name: body.name } })) throw alreadyExists(body.name);
    if ((await this.secrets.count({ where: { projectId } })) >= SECRET_LIMITS.perProjectMax) {
      throw conflict(`a project holds at most ${SECRET_LIMITS.perProjectMax} secrets; delete one first`);
    }
    const now = new Date();
    const row = this.secrets.create({
      projectId,
      name: body.name,
      ...this.cipher.seal(projectId, body.name, body.value),
      createdBy: userId,
      createdAt: now,
      updatedBy: userId,
      updatedAt: now,
    });
    try {
      await this.secrets.insert(row);
    } catch (err) {
      // Two owners creating the same name at once: the primary key decides.
      if (isUniqueViolation(err)) throw alreadyExists(body.name);
      throw err;
    }
    return (await this.toDtos([row]))[0];
  }

  /** A new value under the same name; runs that reference it get the new one from then on. */
  async rotate(userId: string, projectId: string, name: string, body: UpdateSecretRequest): Promise<Secret> {
    await this.projects.requireRole(userId, projectId, 'owner');
    const row = await this.secrets.findOne({ where: { projectId, name } });
    if (!row) throw notFound('secret');
    Object.assign(row, this.cipher.seal(projectId, name, body.value), { updatedBy: userId, updatedAt: new Date() });
    const { affected } = await this.secrets.update(
      { projectId, name },
      { keyId: row.keyId, nonce: row.nonce, ciphertext: row.ciphertext, updatedBy: row.updatedBy, updatedAt: row.updatedAt },
    );
    // Deleted between the read and the write.
    if (!affected) throw notFound('secret');
    return (await this.toDtos([row]))[0];
  }

  async delete(userId: string, projectId: string, name: string): Promise<void> {
    await this.projects.requireRole(userId, projectId, 'owner');
    const { affected } = await this.secrets.delete({ projectId, name });
    if (!affected) throw notFound('secret');
  }

  /**
   * The values of the named secrets of one project, for a run about to be
   * created or dispatched: `env` maps each name to its value, `masks` lists
   * the values to hide from its output (give them to maskSecrets /
   * SecretMasker, which also mask each line of a multi-line value).
   *
   * No role check: the caller has already decided that this run may happen
   * (an operator's request, or a schedule that fires). An unknown name is a
   * 400 naming it, in `details` under `field`; a value this server cannot
   * open (another key) is a 500 that says so, never a wrong value.
   */
  async resolve(projectId: string, names: string[], field = 'secrets'): Promise<ResolvedSecrets> {
    const wanted = [...new Set(names)];
    if (!wanted.length) return { env: {}, masks: [] };
    const rows = await this.secrets.find({ where: { projectId, name: In(wanted) } });
    const byName = new Map(rows.map((r) => [r.name, r]));
    const missing = wanted.filter((n) => !byName.has(n));
    if (missing.length) throw unknownSecrets(missing, field);
    const env: Record<string, string> = {};
    for (const name of wanted) {
      try {
        env[name] = this.cipher.open(projectId, name, byName.get(name)!);
      } catch (err) {
        if (!(err instanceof SecretUnreadableError)) throw err;
        this.logger.error({ projectId, secret: name }, err.message);
        throw new ApiException(500, ErrorCode.internal, err.message);
      }
    }
    return { env, masks: [...new Set(Object.values(env))] };
  }

  /** Refuses (400 naming them) names the project has no secret for; for a schedule saved now and run later. */
  async assertExist(projectId: string, names: string[], field = 'secrets'): Promise<void> {
    const wanted = [...new Set(names)];
    if (!wanted.length) return;
    const rows = await this.secrets.find({ where: { projectId, name: In(wanted) }, select: { name: true } });
    const found = new Set(rows.map((r) => r.name));
    const missing = wanted.filter((n) => !found.has(n));
    if (missing.length) throw unknownSecrets(missing, field);
  }

  private async toDtos(rows: SecretEntity[]): Promise<Secret[]> {
    const ids = [...new Set(rows.flatMap((r) => [r.createdBy, r.updatedBy]).filter((id): id is string => !!id))];
    const users = new Map((await this.users.findByIds(ids)).map((u) => [u.id, u]));
    const actor = (id: string | null): SecretActor => {
      const u = id ? users.get(id) : undefined;
      return u ? { userId: u.id, email: u.email } : null;
    };
    return rows.map((r) => ({
      name: r.name,
      createdAt: r.createdAt.toISOString(),
      createdBy: actor(r.createdBy),
      updatedAt: r.updatedAt.toISOString(),
      updatedBy: actor(r.updatedBy),
    }));
  }
}

const alreadyExists = (name: string) => conflict(`a secret named ${name} exists; rotate it with PUT instead`);

function unknownSecrets(names: string[], field: string): ApiException {
  return new ApiException(
    400,
    ErrorCode.validation,
    `unknown secret${names.length > 1 ? 's' : ''}: ${names.join(', ')}`,
    names.map((n) => ({ path: field, message: `no secret named ${n} in this project` })),
  );
}
