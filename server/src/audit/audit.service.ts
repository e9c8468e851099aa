import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { AuditAction, AuditActorType, AuditDetails, AuditDetailsSchema, AuditEvent, AuditFilter, AuditPage, AuditQuery } from '@kapitan/shared';
import { LessThan, Repository, SelectQueryBuilder } from 'typeorm';
import type { AuthUser } from '../auth/auth-user';
import { DomainEventsService } from '../common/events.service';
import { SchedulerService } from '../common/scheduler.service';
import { APP_CONFIG, AppConfig } from '../config/config';
import { UsersService } from '../users/users.service';
import { AuditEventEntity } from './audit-event.entity';
import { runAuditDetails } from './run-details';

export interface AuditRecord {
  action: AuditAction;
  /** The authenticated caller, or who the handler said acted. */
  actor: { principal: AuthUser } | { userId: string } | { machineId: string } | { anonymous: true };
  projectId: string | null;
  machineId: string | null;
  address: string | null;
  requestId: string | null;
  details: AuditDetails;
}

/** Which events a reader may see: one project's, or the instance-wide ones (no project). */
export type AuditScope = { projectId: string } | { instance: true };

const EXPORT_BATCH = 500;
const DEFAULT_PAGE = 50;

function toDto(e: AuditEventEntity): AuditEvent {
  return {
    id: String(e.seq),
    at: e.at.toISOString(),
    action: e.action,
    actor: { type: e.actorType, userId: e.actorUserId, email: e.actorEmail, tokenId: e.actorTokenId, tokenName: e.actorTokenName, machineId: e.actorMachineId },
    projectId: e.projectId,
    machineId: e.machineId,
    address: e.address,
    requestId: e.requestId,
    details: JSON.parse(e.details) as AuditDetails,
  };
}

/**
 * The audit log: appends events and reads them back. There is no update and
 * no delete of a single event in code; see docs/threat-model.md (T65) for
 * what a database user can still do.
 */
@Injectable()
export class AuditService implements OnModuleInit {
  private readonly logger = new Logger(AuditService.name);

  constructor(
    @InjectRepository(AuditEventEntity) private readonly events: Repository<AuditEventEntity>,
    private readonly users: UsersService,
    private readonly scheduler: SchedulerService,
    private readonly domainEvents: DomainEventsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onModuleInit(): void {
    // Actions no request makes reach the log as domain events; a failed write is logged by DomainEventsService.
    this.domainEvents.on('schedule.fired', (e) =>
      this.record({
        action: 'schedule.fire',
        actor: { userId: e.onBehalfOf },
        projectId: e.projectId,
        machineId: e.run.executions.length === 1 ? e.run.executions[0].machineId : null,
        address: null,
        requestId: null,
        details: {
          scheduleId: e.scheduleId,
          name: e.scheduleName,
          fireAt: e.fireAt.toISOString(),
          ...runAuditDetails(e.run),
        },
      }),
    );
    const days = this.config.auditRetentionDays;
    if (days) this.scheduler.every('audit-retention', 3600_000, () => this.prune(days).then(() => undefined));
  }

  async record(r: AuditRecord): Promise<void> {
    // A recorder that would write an oversized or nested blob is a bug in the recorder: refuse it loudly rather than truncate.
    const details = AuditDetailsSchema.parse(r.details);
    const row: Omit<AuditEventEntity, 'seq'> = {
      at: new Date(),
      action: r.action,
      ...(await this.actorColumns(r.actor)),
      projectId: r.projectId,
      machineId: r.machineId,
      address: r.address?.slice(0, 64) ?? null,
      requestId: r.requestId?.slice(0, 64) ?? null,
      details: JSON.stringify(details),
    };
    await this.events.insert(row);
  }

  private async actorColumns(actor: AuditRecord['actor']): Promise<Pick<AuditEventEntity, 'actorType' | 'actorUserId' | 'actorEmail' | 'actorTokenId' | 'actorTokenName' | 'actorMachineId'>> {
    const none = { actorUserId: null, actorEmail: null, actorTokenId: null, actorTokenName: null, actorMachineId: null };
    if ('anonymous' in actor) return { actorType: 'anonymous', ...none };
    if ('machineId' in actor) return { actorType: 'machine', ...none, actorMachineId: actor.machineId };
    const userId = 'principal' in actor ? actor.principal.userId : actor.userId;
    // A principal carries the address its authentication read a moment ago; only a bare user id needs the read.
    const email = ('principal' in actor ? actor.principal.email : undefined) ?? (await this.users.findById(userId))?.email ?? null;
    const token = 'principal' in actor ? actor.principal.apiToken : undefined;
    const type: AuditActorType = token ? 'api_token' : 'user';
    return { ...none, actorType: type, actorUserId: userId, actorEmail: email, actorTokenId: token?.id ?? null, actorTokenName: token?.name ?? null };
  }

  async page(scope: AuditScope, q: AuditQuery): Promise<AuditPage> {
    const limit = q.limit ?? DEFAULT_PAGE;
    const qb = this.filtered(scope, q).take(limit + 1);
    if (q.cursor) qb.andWhere('e.seq < :cursor', { cursor: Number(q.cursor) });
    const rows = await qb.getMany();
    const more = rows.length > limit;
    const events = rows.slice(0, limit).map(toDto);
    return { events, nextCursor: more ? events[events.length - 1].id : null };
  }

  /** Every matching event, newest first, read in batches so an export of any size holds one batch in memory. */
  async *all(scope: AuditScope, f: AuditFilter): AsyncGenerator<AuditEvent> {
    let cursor: number | undefined;
    for (;;) {
      const qb = this.filtered(scope, f).take(EXPORT_BATCH);
      if (cursor !== undefined) qb.andWhere('e.seq < :cursor', { cursor });
      const rows = await qb.getMany();
      for (const r of rows) yield toDto(r);
      if (rows.length < EXPORT_BATCH) return;
      cursor = rows[rows.length - 1].seq;
    }
  }

  private filtered(scope: AuditScope, f: AuditFilter): SelectQueryBuilder<AuditEventEntity> {
    const qb = this.events.createQueryBuilder('e').orderBy('e.seq', 'DESC');
    if ('projectId' in scope) qb.where('e.projectId = :projectId', { projectId: scope.projectId });
    else qb.where('e.projectId IS NULL');
    if (f.action) qb.andWhere('e.action = :action', { action: f.action });
    if (f.actor) qb.andWhere('(e.actorUserId = :actor OR e.actorTokenId = :actor OR e.actorMachineId = :actor)', { actor: f.actor });
    if (f.machine) qb.andWhere('e.machineId = :machine', { machine: f.machine });
    if (f.from) qb.andWhere('e.at >= :from', { from: new Date(f.from) });
    if (f.to) qb.andWhere('e.at < :to', { to: new Date(f.to) });
    return qb;
  }

  /** Retention: drops events older than `days`. Safe on every node at once (a plain conditional delete). */
  async prune(days: number, now = new Date()): Promise<number> {
    const r = await this.events.delete({ at: LessThan(new Date(now.getTime() - days * 86_400_000)) });
    if (r.affected) this.logger.log({ pruned: r.affected, days }, 'audit events past retention pruned');
    return r.affected ?? 0;
  }
}
