import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { EnrolRequest, EnrolResponse, ErrorCode } from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import { In, Repository } from 'typeorm';
import { ApiException } from '../common/api-exception';
import { DomainEventsService } from '../common/events.service';
import { mintSecret, parseSecret, secretMatches } from '../common/secrets';
import { TickBatcher } from '../common/tick-batcher';
import { EnrolmentTokenEntity, MachineEntity } from './machine.entity';
import { toMachineDto, type MachineIdentity, type MachineProfile } from './machine.mapper';

/** Enrolment (a token exchanged for a machine credential) and the credential check of every agent handshake. */
@Injectable()
export class EnrolmentService {
  private readonly logger = new Logger(EnrolmentService.name);
  /** The handshakes of one turn (a reconnect storm) read their machines in one query. */
  private readonly credentials = new TickBatcher<string, MachineEntity>(async (ids) => {
    const rows = await this.machines.find({ where: { id: In(ids) }, select: ['id', 'projectId', 'credentialHash', 'revokedAt', 'labels', 'createdAt'] });
    return new Map(rows.map((m) => [m.id, m]));
  });

  constructor(
    @InjectRepository(MachineEntity) private readonly machines: Repository<MachineEntity>,
    @InjectRepository(EnrolmentTokenEntity) private readonly tokens: Repository<EnrolmentTokenEntity>,
    private readonly events: DomainEventsService,
  ) {}

  /**
   * Exchange a project enrolment token for a machine credential. Every
   * refusal reads the same, so a caller learns nothing about the token's
   * project or why it failed; the log says why.
   */
  async enrol(body: EnrolRequest): Promise<EnrolResponse> {
    const refused = (why: string) => {
      this.logger.warn({ reason: why }, 'enrolment refused');
      return new ApiException(401, ErrorCode.enrolmentRefused, 'enrolment token is not valid (unknown, expired, used up or revoked)');
    };
    const parsed = parseSecret('kpe', body.token);
    if (!parsed) throw refused('malformed token');
    const token = await this.tokens.findOne({ where: { id: parsed.id } });
    if (!token || !secretMatches(parsed.secret, token.secretHash)) throw refused('unknown token');
    if (token.revokedAt) throw refused(`token ${token.id} revoked`);
    if (token.expiresAt && token.expiresAt.getTime() <= Date.now()) throw refused(`token ${token.id} expired`);
    // One conditional UPDATE takes a use, so two racing enrolments cannot both take the last one.
    const qb = this.tokens
      .createQueryBuilder()
      .update()
      .set({ uses: () => 'uses + 1' })
      .where('id = :id AND revokedAt IS NULL', { id: token.id });
    if (token.maxUses !== null) qb.andWhere('uses < :max', { max: token.maxUses });
    const taken = await qb.execute();
    if (!taken.affected) throw refused(`token ${token.id} used up`);

    const id = randomUUID();
    const { token: credential, hash } = mintSecret('kpm', id);
    const now = new Date();
    await this.machines.insert({
      id,
      projectId: token.projectId,
      hostname: body.facts.hostname,
      // The agent adds labels only where its token allows, and never over the token's (threat model T45).
      labels: { ...(token.allowAgentLabels ? (body.labels ?? {}) : {}), ...token.labels },
      facts: body.facts,
      credentialHash: hash,
      enrolmentTokenId: token.id,
      status: 'offline',
      connectionId: null,
      nodeId: null,
      connectedAt: null,
      lastSeenAt: null,
      createdAt: now,
      revokedAt: null,
    });
    this.logger.log({ machineId: id, projectId: token.projectId, hostname: body.facts.hostname }, 'machine enrolled');
    const machine = await this.machines.findOneByOrFail({ id });
    this.events.publish('machine.updated', { projectId: machine.projectId, machine: toMachineDto(machine) });
    return { machineId: id, projectId: token.projectId, credential };
  }

  /** The machine a credential names, or null if unknown or revoked. */
  async authenticate(credential: unknown): Promise<(MachineIdentity & { profile: MachineProfile }) | null> {
    const parsed = parseSecret('kpm', credential);
    if (!parsed) return null;
    const m = await this.credentials.get(parsed.id);
    if (!m || m.revokedAt || !secretMatches(parsed.secret, m.credentialHash)) return null;
    return { machineId: m.id, projectId: m.projectId, profile: { labels: m.labels, createdAt: m.createdAt } };
  }
}
