import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import {
  CreateEnrolmentTokenRequest,
  Labels,
  EnrolmentToken,
  EnrolRequest,
  EnrolResponse,
  ErrorCode,
  Machine,
  MachineFacts,
  PRESENCE,
  Targets,
  UpdateMachineRequest,
} from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import { In, IsNull, LessThan, Repository } from 'typeorm';
import { ApiException, notFound } from '../common/api-exception';
import { DomainEventsService } from '../common/events.service';
import { mintSecret, parseSecret, secretMatches } from '../common/secrets';
import { APP_CONFIG, AppConfig } from '../config/config';
import { ProjectsService } from '../projects/projects.service';
import { EnrolmentTokenEntity, MachineEntity } from './machine.entity';

export function toMachineDto(m: MachineEntity): Machine {
  return {
    id: m.id,
    projectId: m.projectId,
    hostname: m.hostname,
    status: m.status,
    labels: m.labels,
    facts: m.facts,
    lastSeenAt: m.lastSeenAt?.toISOString() ?? null,
    connectedAt: m.connectedAt?.toISOString() ?? null,
    createdAt: m.createdAt.toISOString(),
  };
}

function toTokenDto(t: EnrolmentTokenEntity, token?: string): EnrolmentToken {
  return {
    id: t.id,
    ...(token ? { token } : {}),
    prefix: t.prefix,
    expiresAt: t.expiresAt?.toISOString() ?? null,
    maxUses: t.maxUses,
    uses: t.uses,
    labels: t.labels,
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

/** Enrolment, credentials and presence of machines. */
@Injectable()
export class MachinesService implements OnModuleInit, OnModuleDestroy, BeforeApplicationShutdown {
  private readonly logger = new Logger(MachinesService.name);
  private presenceTimer: NodeJS.Timeout | null = null;
  /** Heartbeats since the last flush: one UPDATE for all of them, not one per beat. */
  private readonly seen = new Set<string>();
  /** Set when the node stops: presence is then written in bulk (beforeApplicationShutdown). */
  private closing = false;

  constructor(
    @InjectRepository(MachineEntity) private readonly machines: Repository<MachineEntity>,
    @InjectRepository(EnrolmentTokenEntity) private readonly tokens: Repository<EnrolmentTokenEntity>,
    private readonly projects: ProjectsService,
    private readonly events: DomainEventsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onModuleInit(): void {
    // Heartbeats reach the database within 5 s, well inside the offline threshold (PRESENCE.offlineAfterMs).
    this.presenceTimer = setInterval(() => {
      this.flushHeartbeats()
        .then(() => this.sweepStale())
        .catch((err: unknown) => this.logger.warn({ err: String(err) }, 'presence upkeep failed'));
    }, 5_000);
    this.presenceTimer.unref();
  }

  onModuleDestroy(): void {
    if (this.presenceTimer) clearInterval(this.presenceTimer);
  }

  /**
   * This node is stopping: every machine it holds goes offline in one
   * statement, before its sockets close, instead of one write per socket as
   * they close (5,000 of them took seconds and delayed the restart).
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.closing = true;
    this.seen.clear();
    try {
      const held = await this.machines.find({ where: { nodeId: this.config.nodeId, status: 'online' } });
      if (!held.length) return;
      const now = new Date();
      await this.machines.update({ nodeId: this.config.nodeId, status: 'online' }, { status: 'offline', connectionId: null, nodeId: null, lastSeenAt: now });
      for (const m of held) {
        Object.assign(m, { status: 'offline', connectionId: null, nodeId: null, lastSeenAt: now });
        this.events.publish('machine.updated', { projectId: m.projectId, machine: toMachineDto(m) });
      }
      this.logger.log({ machines: held.length }, 'node stopping: its machines are offline');
    } catch (err) {
      this.logger.warn({ err: String(err) }, 'could not mark this node\'s machines offline at shutdown');
    }
  }

  // ---------------------------------------------------------------- enrolment tokens

  async createToken(userId: string, projectId: string, body: CreateEnrolmentTokenRequest): Promise<EnrolmentToken> {
    await this.projects.requireRole(userId, projectId, 'operator');
    if (body.expiresAt && new Date(body.expiresAt).getTime() <= Date.now()) {
      throw new ApiException(400, ErrorCode.validation, 'expiresAt must be in the future', [
        { path: 'expiresAt', message: 'must be in the future' },
      ]);
    }
    const id = randomUUID();
    const { token, hash } = mintSecret('kpe', id);
    const row = this.tokens.create({
      id,
      projectId,
      secretHash: hash,
      prefix: token.slice(0, 12),
      labels: body.labels ?? {},
      expiresAt: body.expiresAt ? new Date(body.expiresAt) : null,
      maxUses: body.maxUses ?? null,
      uses: 0,
      createdBy: userId,
      createdAt: new Date(),
      revokedAt: null,
    });
    await this.tokens.insert(row);
    return toTokenDto(row, token);
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
      labels: { ...token.labels, ...(body.labels ?? {}) },
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
    const m = await this.machines.findOne({
      where: { id: parsed.id },
      select: ['id', 'projectId', 'credentialHash', 'revokedAt', 'labels', 'createdAt'],
    });
    if (!m || m.revokedAt || !secretMatches(parsed.secret, m.credentialHash)) return null;
    return { machineId: m.id, projectId: m.projectId, profile: { labels: m.labels, createdAt: m.createdAt } };
  }

  // ---------------------------------------------------------------- machines (REST)

  async list(userId: string, projectId: string): Promise<Machine[]> {
    await this.projects.requireRole(userId, projectId, 'viewer');
    const rows = await this.machines.find({ where: { projectId, revokedAt: IsNull() }, order: { createdAt: 'ASC' } });
    return rows.map(toMachineDto);
  }

  async get(userId: string, projectId: string, machineId: string): Promise<Machine> {
    await this.projects.requireRole(userId, projectId, 'viewer');
    return toMachineDto(await this.findLive(projectId, machineId));
  }

  async update(userId: string, projectId: string, machineId: string, body: UpdateMachineRequest): Promise<Machine> {
    await this.projects.requireRole(userId, projectId, 'operator');
    const m = await this.findLive(projectId, machineId);
    m.labels = body.labels;
    await this.machines.update({ id: m.id }, { labels: m.labels });
    const dto = toMachineDto(m);
    this.events.publish('machine.updated', { projectId, machine: dto });
    return dto;
  }

  /** Revoke: the credential stops working and a connected agent is dropped at once (by the gateway). */
  async revoke(userId: string, projectId: string, machineId: string): Promise<void> {
    await this.projects.requireRole(userId, projectId, 'operator');
    const m = await this.findLive(projectId, machineId);
    await this.machines.update({ id: m.id }, { revokedAt: new Date(), credentialHash: null, status: 'offline', connectionId: null });
    this.events.publish('machine.revoked', { projectId, machineId });
  }

  /** Machines of a project that a run's targets name; unknown ids are an error, not silently skipped. */
  async resolveTargets(projectId: string, targets: Targets): Promise<Pick<MachineEntity, 'id' | 'labels' | 'status'>[]> {
    // Only what a run needs (not facts), and only the named machines when they are named: a project may hold thousands.
    const select: (keyof MachineEntity)[] = ['id', 'labels', 'status'];
    const all =
      targets.machineIds && !targets.all
        ? await this.machines.find({ where: { projectId, id: In(targets.machineIds), revokedAt: IsNull() }, select })
        : await this.machines.find({ where: { projectId, revokedAt: IsNull() }, select });
    if (targets.all) return all;
    let chosen = all;
    if (targets.machineIds) {
      const byId = new Map(all.map((m) => [m.id, m]));
      const missing = targets.machineIds.filter((id) => !byId.has(id));
      if (missing.length) {
        throw new ApiException(404, ErrorCode.notFound, `machine not found: ${missing.join(', ')}`, [
          { path: 'targets.machineIds', message: `not machines of this project: ${missing.join(', ')}` },
        ]);
      }
      const wanted = new Set(targets.machineIds);
      chosen = chosen.filter((m) => wanted.has(m.id));
    }
    if (targets.labels) {
      const want = Object.entries(targets.labels);
      chosen = chosen.filter((m) => want.every(([k, v]) => m.labels[k] === v));
    }
    return chosen;
  }

  private async findLive(projectId: string, machineId: string): Promise<MachineEntity> {
    const m = await this.machines.findOne({ where: { id: machineId, projectId, revokedAt: IsNull() } });
    if (!m) throw notFound('machine');
    return m;
  }

  // ---------------------------------------------------------------- presence

  /**
   * A socket said hello: it now holds the machine (the newest socket wins).
   * One UPDATE, no read back: the announcement is built from what the
   * handshake read (`profile`; read again if there is none) and what the
   * hello told.
   */
  async markOnline(identity: MachineIdentity, profile: MachineProfile | null, connectionId: string, facts: MachineFacts): Promise<Machine | null> {
    const now = new Date();
    const patch: Partial<MachineEntity> = {
      status: 'online',
      connectionId,
      nodeId: this.config.nodeId,
      connectedAt: now,
      lastSeenAt: now,
      facts,
      hostname: facts.hostname,
    };
    const r = await this.machines.update({ id: identity.machineId, revokedAt: IsNull() }, patch);
    if (!r.affected) return null;
    const dto = toMachineDto(
      profile
        ? Object.assign(new MachineEntity(), patch, { id: identity.machineId, projectId: identity.projectId, labels: profile.labels, createdAt: profile.createdAt })
        : await this.machines.findOneByOrFail({ id: identity.machineId }),
    );
    this.events.publish('machine.updated', { projectId: identity.projectId, machine: dto });
    return dto;
  }

  /** Only the socket that holds the machine may mark it offline; an older one's late disconnect changes nothing. */
  async markOffline(machineId: string, connectionId: string): Promise<void> {
    this.seen.delete(machineId);
    if (this.closing) return; // beforeApplicationShutdown marked them all at once
    const r = await this.machines.update({ id: machineId, connectionId }, { status: 'offline', connectionId: null, nodeId: null, lastSeenAt: new Date() });
    if (!r.affected) return;
    const m = await this.machines.findOneBy({ id: machineId });
    if (m) this.events.publish('machine.updated', { projectId: m.projectId, machine: toMachineDto(m) });
  }

  heartbeat(machineId: string): void {
    this.seen.add(machineId);
  }

  /** Writes the heartbeats gathered since the last call as one statement per 500 machines. */
  async flushHeartbeats(): Promise<void> {
    if (!this.seen.size) return;
    const ids = [...this.seen];
    this.seen.clear();
    const now = new Date();
    for (let i = 0; i < ids.length; i += 500) {
      await this.machines.update({ id: In(ids.slice(i, i + 500)), status: 'online' }, { lastSeenAt: now });
    }
  }

  /**
   * Machines whose holder went silent past the threshold (its node died, or
   * the network was cut) are offline. Every node runs this; the conditional
   * UPDATE makes it idempotent.
   */
  async sweepStale(): Promise<void> {
    const cutoff = new Date(Date.now() - PRESENCE.offlineAfterMs);
    const stale = await this.machines.find({ where: { status: 'online', lastSeenAt: LessThan(cutoff) }, take: 1000 });
    for (const m of stale) {
      const r = await this.machines.update(
        { id: m.id, status: 'online', lastSeenAt: LessThan(cutoff) },
        { status: 'offline', connectionId: null, nodeId: null },
      );
      if (r.affected) {
        m.status = 'offline';
        this.events.publish('machine.updated', { projectId: m.projectId, machine: toMachineDto(m) });
      }
    }
  }

  /** Machines offline for longer than `seconds` (their running work is lost). */
  async offlineSince(machineIds: string[], seconds: number): Promise<Set<string>> {
    if (!machineIds.length) return new Set();
    const cutoff = new Date(Date.now() - seconds * 1000);
    const rows = await this.machines.find({ where: { id: In(machineIds) }, select: ['id', 'status', 'lastSeenAt', 'revokedAt'] });
    return new Set(
      rows.filter((m) => m.revokedAt || (m.status === 'offline' && (!m.lastSeenAt || m.lastSeenAt < cutoff))).map((m) => m.id),
    );
  }
}
