import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import {
  CreateScheduleRequest,
  CreateScheduleRequestSchema,
  ErrorCode,
  ListOccurrencesQuery,
  Occurrence,
  runSpecOf,
  Schedule,
  SCHEDULE_LIMITS,
  ScheduleRunSpec,
  UpdateScheduleRequest,
} from '@kapitan/shared';
import { ZodValidationException } from 'nestjs-zod';
import { randomUUID } from 'node:crypto';
import { In, LessThan, Repository } from 'typeorm';
import { ApiException, notFound } from '../common/api-exception';
import { SchedulerService } from '../common/scheduler.service';
import { ExecutionsService } from '../executions/executions.service';
import { ProjectsService } from '../projects/projects.service';
import { OccurrenceEntity, ScheduleEntity } from './schedule.entity';
import { ScheduleClock } from './schedule-clock';
import { toOccurrence, toSchedule } from './schedule.mapper';
import { slotAfter } from './schedule-times';

/** The firing job's name on the SchedulerService; woken after a local change. */
export const SCHEDULES_JOB = 'schedules';

const invalid = (path: string, message: string) => new ApiException(400, ErrorCode.validation, `${path}: ${message}`, [{ path, message }]);

/**
 * Schedules as users manage them: create, read, change, pause, delete, and
 * their history. Firing is ScheduleFiring's job; this service only keeps
 * `nextFireAt` right whenever the timing changes.
 */
@Injectable()
export class SchedulesService {
  constructor(
    @InjectRepository(ScheduleEntity) private readonly schedules: Repository<ScheduleEntity>,
    @InjectRepository(OccurrenceEntity) private readonly occurrenceRows: Repository<OccurrenceEntity>,
    private readonly projects: ProjectsService,
    private readonly executions: ExecutionsService,
    private readonly clock: ScheduleClock,
    private readonly scheduler: SchedulerService,
  ) {}

  async create(userId: string, projectId: string, body: CreateScheduleRequest): Promise<Schedule> {
    await this.projects.requireRole(userId, projectId, 'operator');
    const now = this.clock.now();
    const row = this.schedules.create({
      id: randomUUID(),
      projectId,
      createdBy: userId,
      createdAt: now,
      updatedAt: now,
      nextFireAt: null,
      ...(await this.checked(projectId, body, now)),
    });
    await this.schedules.insert(row);
    this.scheduler.wake(SCHEDULES_JOB);
    return toSchedule(row, null, now);
  }

  async list(userId: string, projectId: string): Promise<Schedule[]> {
    await this.projects.requireRole(userId, projectId, 'viewer');
    const rows = await this.schedules.find({ where: { projectId }, order: { createdAt: 'ASC' } });
    const last = await this.lastOccurrences(rows.map((r) => r.id));
    const now = this.clock.now();
    return rows.map((r) => toSchedule(r, last.get(r.id) ?? null, now));
  }

  async get(userId: string, id: string): Promise<Schedule> {
    const s = await this.findVisible(userId, id, 'viewer');
    return toSchedule(s, (await this.lastOccurrences([s.id])).get(s.id) ?? null, this.clock.now());
  }

  /**
   * A merge: the stored schedule with the changes on top, checked whole as
   * a new one would be. A change of timing (cron, zone, runAt, resuming)
   * counts from now; slots already claimed stay as they are.
   */
  async update(userId: string, id: string, patch: UpdateScheduleRequest): Promise<Schedule> {
    const s = await this.findVisible(userId, id, 'operator');
    const merged: Record<string, unknown> = { ...this.asRequest(s) };
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete merged[k];
      else if (v !== undefined) merged[k] = v;
    }
    // Switching to a one-shot drops the zone that went with cron.
    if (patch.runAt && patch.timezone === undefined && patch.cron === null) delete merged.timezone;
    const parsed = CreateScheduleRequestSchema.safeParse(merged);
    if (!parsed.success) throw new ZodValidationException(parsed.error);
    const now = this.clock.now();
    const next = await this.checked(s.projectId, parsed.data, now, s);
    await this.schedules.update({ id: s.id }, { ...next, updatedAt: now });
    this.scheduler.wake(SCHEDULES_JOB);
    return this.get(userId, id);
  }

  setEnabled(userId: string, id: string, enabled: boolean): Promise<Schedule> {
    return this.update(userId, id, { enabled });
  }

  /** Its history goes with it (FK cascade); executions it started stay, they are the project's record. */
  async delete(userId: string, id: string): Promise<void> {
    const s = await this.findVisible(userId, id, 'operator');
    await this.schedules.delete({ id: s.id });
  }

  async occurrences(userId: string, id: string, q: ListOccurrencesQuery): Promise<Occurrence[]> {
    const s = await this.findVisible(userId, id, 'viewer');
    const rows = await this.occurrenceRows.find({
      where: { scheduleId: s.id, ...(q.before ? { fireAt: LessThan(new Date(q.before)) } : {}) },
      order: { fireAt: 'DESC' },
      take: q.limit ?? 50,
    });
    const runs = await this.executions.byRuns(rows.filter((o) => o.runId && o.status !== 'firing' && o.status !== 'queued').map((o) => o.runId as string));
    return rows.map((o) => toOccurrence(o, (o.status !== 'firing' && o.runId && runs.get(o.runId)) || []));
  }

  /** Why a file must stay: the schedules that run it. */
  async namesUsingFile(fileId: string): Promise<string[]> {
    const rows = await this.schedules.find({ where: { fileId }, select: ['name'] });
    return rows.map((r) => `schedule ${r.name}`);
  }

  /** 404 for a schedule the caller may not see (existence is not leaked), 403 below `min`. */
  private async findVisible(userId: string, id: string, min: 'viewer' | 'operator'): Promise<ScheduleEntity> {
    const s = await this.schedules.findOne({ where: { id } });
    if (!s) throw notFound('schedule');
    await this.projects.requireRole(userId, s.projectId, min).catch((err: unknown) => {
      throw err instanceof ApiException && err.getStatus() === 403 ? err : notFound('schedule');
    });
    return s;
  }

  /**
   * The columns of a valid request, after the checks that need the
   * database or the clock: machines and secrets of this project, a one-shot
   * in the future. `nextFireAt` counts from now when the timing changed (or
   * on resume), else stays.
   */
  private async checked(projectId: string, body: CreateScheduleRequest, now: Date, before?: ScheduleEntity): Promise<Partial<ScheduleEntity>> {
    const run = runSpecOf(body) as ScheduleRunSpec;
    await this.executions.checkRunSpec(projectId, run);
    const runAt = body.runAt ? new Date(body.runAt) : null;
    const sameRunAt = before?.runAt?.getTime() === runAt?.getTime();
    if (runAt && !sameRunAt) {
      if (runAt.getTime() <= now.getTime()) throw invalid('runAt', 'is in the past');
      if (runAt.getTime() > now.getTime() + SCHEDULE_LIMITS.runAtMaxYears * 365.25 * 86400_000) throw invalid('runAt', `more than ${SCHEDULE_LIMITS.runAtMaxYears} years ahead`);
    }
    const timing = { cron: body.cron ?? null, timezone: body.cron ? (body.timezone ?? 'UTC') : 'UTC', runAt };
    const enabled = body.enabled ?? true;
    const timingChanged =
      !before || before.cron !== timing.cron || before.timezone !== timing.timezone || !sameRunAt || (enabled && !before.enabled);
    const fileId = (run as { fileId?: string }).fileId ?? null;
    return {
      name: body.name,
      ...timing,
      enabled,
      missedRunPolicy: body.missedRunPolicy ?? 'skip',
      overlapPolicy: body.overlapPolicy ?? 'skip',
      queueLimit: body.queueLimit ?? 1,
      run,
      fileId,
      ...(timingChanged ? { nextFireAt: timing.runAt && timing.runAt.getTime() > now.getTime() ? timing.runAt : slotAfter(timing, now) } : {}),
    };
  }

  private asRequest(s: ScheduleEntity): Record<string, unknown> {
    return {
      ...s.run,
      name: s.name,
      ...(s.cron ? { cron: s.cron, timezone: s.timezone } : {}),
      ...(s.runAt ? { runAt: s.runAt.toISOString() } : {}),
      enabled: s.enabled,
      missedRunPolicy: s.missedRunPolicy,
      overlapPolicy: s.overlapPolicy,
      queueLimit: s.queueLimit,
    };
  }

  /** The latest occurrence of each schedule, for the list's at-a-glance status. */
  private async lastOccurrences(ids: string[]): Promise<Map<string, OccurrenceEntity>> {
    const out = new Map<string, OccurrenceEntity>();
    if (!ids.length) return out;
    // One query for all, not one per schedule; the (scheduleId, fireAt) unique index serves the MAX.
    const rows = await this.occurrenceRows
      .createQueryBuilder('o')
      .where('o.scheduleId IN (:...ids)', { ids })
      .andWhere('o.fireAt = (SELECT MAX(o2.fireAt) FROM schedule_occurrences o2 WHERE o2.scheduleId = o.scheduleId)')
      .getMany();
    for (const r of rows) out.set(r.scheduleId, r);
    return out;
  }
}
