import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { ExecutionStatus, isFinalStatus, OccurrenceStatus } from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import { In, IsNull, LessThan, LessThanOrEqual, Not, Repository } from 'typeorm';
import { ApiException } from '../common/api-exception';
import { DomainEventsService } from '../common/events.service';
import { SchedulerService } from '../common/scheduler.service';
import { isUniqueViolation } from '../common/unique-violation';
import { ExecutionsService } from '../executions/executions.service';
import { OccurrenceEntity, ScheduleEntity } from './schedule.entity';
import { ScheduleClock } from './schedule-clock';
import { slotAfter } from './schedule-times';
import { SCHEDULES_JOB } from './schedules.service';

/**
 * A slot more than this late fell while no server was up (or all were
 * stuck): the schedule's missed-run policy decides, and the slots between it
 * and now are not run one by one. Less late is just late, and fires.
 */
export const MISSED_AFTER_MS = 30_000;
/**
 * How long a node holds an occurrence it claimed while it creates the
 * executions (milliseconds of work). Past it, any node takes over; the
 * transaction that creates the executions checks the claim, so a slow
 * node that lost it inserts nothing.
 */
export const LEASE_MS = 3_000;
/** The longest the tick sleeps: what other nodes created or changed is seen within this. */
export const MAX_TICK_DELAY_MS = 2_000;
const BATCH = 100;
/**
 * Slots of different schedules fired at once by one node. One at a time, a
 * slot waited on about four commits and five reads in turn, so MariaDB's
 * commit time capped a node at a few slots a second. Slots of one schedule
 * stay in order: a round holds each schedule once.
 */
const FIRE_CONCURRENCY = 8;

/**
 * Each node walks the due list in its own random order: in the same order
 * every node raced for the same slot first, lost the insert on all but one,
 * and two nodes fired fewer slots a second than one.
 */
function shuffled<T>(items: T[]): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

async function inParallel<T>(items: readonly T[], limit: number, each: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await each(items[next++]!);
    }),
  );
}
/** Bounds one pass; what is left is due at once, so the next pass follows immediately. */
const MAX_ROUNDS = 20;

/**
 * Fires due schedules on every node at once, each occurrence exactly once:
 * see OccurrenceEntity for the claim. The tick wakes at the earliest slot
 * any schedule is due at (not on a poll), so an occurrence fires within
 * milliseconds of its time.
 */
@Injectable()
export class ScheduleFiring implements OnApplicationBootstrap {
  private readonly logger = new Logger(ScheduleFiring.name);
  /**
   * Spec seam: runs after a claim, before the executions are created. A
   * throw leaves the occurrence claimed, as a node dying there would.
   */
  afterClaim: ((o: OccurrenceEntity) => Promise<void>) | null = null;
  private readonly endedRuns = new Set<string>();
  private endedRunsCheck = false;
  /** Spec seam: the lookup of the runs that ended last, once it is done. */
  endedRunsChecked: Promise<void> = Promise.resolve();

  constructor(
    @InjectRepository(ScheduleEntity) private readonly schedules: Repository<ScheduleEntity>,
    @InjectRepository(OccurrenceEntity) private readonly occurrences: Repository<OccurrenceEntity>,
    private readonly executions: ExecutionsService,
    private readonly scheduler: SchedulerService,
    private readonly clock: ScheduleClock,
    private readonly events: DomainEventsService,
  ) {}

  onApplicationBootstrap(): void {
    this.scheduler.timed(SCHEDULES_JOB, MAX_TICK_DELAY_MS, () => this.tick());
    // An execution ending may settle an occurrence (and start a queued one) now rather than at the next tick.
    this.events.on('execution.updated', (e) => {
      if (isFinalStatus(e.execution.status)) this.runEnded(e.execution.runId);
    });
  }

  /**
   * Most runs are nobody's occurrence: each final execution woke a whole
   * tick (five or six reads) beside the next request. Now the runs that
   * ended in one turn of the loop are looked up together, by the indexed
   * run id, and only a run of a running occurrence wakes the tick.
   */
  private runEnded(runId: string): void {
    this.endedRuns.add(runId);
    if (this.endedRunsCheck) return;
    this.endedRunsCheck = true;
    setImmediate(() => {
      this.endedRunsCheck = false;
      const runIds = [...this.endedRuns];
      this.endedRuns.clear();
      this.endedRunsChecked = this.wakeIfOccurrence(runIds);
    });
  }

  private async wakeIfOccurrence(runIds: string[]): Promise<void> {
    try {
      for (let i = 0; i < runIds.length; i += BATCH) {
        if (await this.occurrences.exists({ where: { runId: In(runIds.slice(i, i + BATCH)), status: 'running' } })) return this.scheduler.wake(SCHEDULES_JOB);
      }
    } catch (err) {
      // Not knowing is no reason to wait for the next tick.
      this.logger.warn({ err: String(err) }, 'could not look up the occurrences of ended runs');
      this.scheduler.wake(SCHEDULES_JOB);
    }
  }

  /** One pass: take over stale claims, settle finished occurrences, fire what is due. Answers ms until the next thing due. */
  async tick(): Promise<number> {
    await this.takeOverStale();
    await this.settle();
    // Again while something is due: firing a slot may leave its next one due already (a late tick, a catch-up).
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const due = await this.schedules.find({ where: { nextFireAt: LessThanOrEqual(this.clock.now()) }, order: { nextFireAt: 'ASC' }, take: BATCH });
      if (!due.length) break;
      await inParallel(shuffled(due), FIRE_CONCURRENCY, (s) =>
        this.fireSlot(s).catch((err: unknown) => this.logger.warn({ err: String(err), scheduleId: s.id }, 'firing a schedule failed')),
      );
    }
    return this.untilNext();
  }

  private async untilNext(): Promise<number> {
    const next = await this.schedules.findOne({ where: { nextFireAt: Not(IsNull()) }, order: { nextFireAt: 'ASC' }, select: ['id', 'nextFireAt'] });
    const lease = await this.occurrences.findOne({ where: { status: 'firing' }, order: { leaseUntil: 'ASC' }, select: ['id', 'leaseUntil'] });
    const times = [next?.nextFireAt, lease?.leaseUntil].filter((d): d is Date => !!d).map((d) => d.getTime() - this.clock.now().getTime());
    return Math.max(0, Math.min(MAX_TICK_DELAY_MS, ...times));
  }

  /**
   * One slot of one schedule: decide what it is (fire, queue, skip and
   * why), claim it by inserting its row, move the schedule to its next slot,
   * then fire it if this node's insert won. Every node that sees the slot
   * does all of this; the unique row lets one of them through, and the
   * conditional advance moves the schedule on once.
   */
  private async fireSlot(s: ScheduleEntity): Promise<void> {
    const slot = s.nextFireAt as Date;
    const now = this.clock.now();
    const late = now.getTime() - slot.getTime() > MISSED_AFTER_MS;
    // From the slot, not from now: every node computes the same next slot whatever its clock says.
    // A missed stretch is stepped over whole: its first slot stands for it.
    let following = slotAfter(s, late ? now : slot);
    let status: OccurrenceStatus = 'firing';
    let reason: string | null = null;
    if (!s.enabled) {
      // One record of the skipping, then nothing until resumed (resume counts from then).
      status = 'skipped';
      reason = 'paused';
      following = null;
    } else if (late && s.missedRunPolicy === 'skip') {
      status = 'skipped';
      reason = 'missed: no server was up at this time (missed-run policy: skip)';
    } else {
      if (late) reason = 'missed: no server was up at this time; run once (missed-run policy: run_once)';
      const open = await this.occurrences.find({ where: { scheduleId: s.id, status: In(['firing', 'running', 'queued'] as OccurrenceStatus[]) } });
      const active = open.filter((o) => o.status !== 'queued');
      const waiting = open.length - active.length;
      if (s.overlapPolicy === 'queue' && (active.length || waiting)) {
        if (waiting >= s.queueLimit) {
          status = 'skipped';
          reason = `overlap: the previous occurrence still runs and ${waiting} already wait (queue limit ${s.queueLimit})`;
        } else status = 'queued';
      } else if (s.overlapPolicy === 'skip' && active.length) {
        status = 'skipped';
        reason = 'overlap: the previous occurrence still runs (overlap policy: skip)';
      }
    }
    const row = this.occurrences.create({
      id: randomUUID(),
      scheduleId: s.id,
      projectId: s.projectId,
      fireAt: slot,
      status,
      reason,
      runId: status === 'firing' ? randomUUID() : null,
      leaseUntil: status === 'firing' ? new Date(Math.max(now.getTime(), slot.getTime()) + LEASE_MS) : null,
      firedAt: null,
      finishedAt: status === 'skipped' ? now : null,
      createdAt: now,
    });
    let won = true;
    try {
      await this.occurrences.insert(row);
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      won = false; // another node claimed this slot
    }
    await this.schedules.update({ id: s.id, nextFireAt: slot }, { nextFireAt: following });
    if (!won || status !== 'firing') return;
    if (s.overlapPolicy === 'replace') await this.replacePrevious(s, row);
    await this.execute(s, row);
  }

  private async replacePrevious(s: ScheduleEntity, current: OccurrenceEntity): Promise<void> {
    const running = await this.occurrences.find({ where: { scheduleId: s.id, status: 'running', id: Not(current.id) } });
    for (const o of running) if (o.runId) await this.executions.cancelRun(o.runId, `replaced by the occurrence of ${current.fireAt.toISOString()}`);
  }

  /**
   * Creates the occurrence's executions, as the schedule's creator, in the
   * transaction that moves the row from `firing` (with this node's claim
   * token) to `running`. A refusal that will not change by retrying (no
   * machine matches, the creator is no longer an operator, a secret is gone)
   * records the occurrence as skipped with the reason; anything else leaves
   * it claimed, for a retry once the lease has passed.
   */
  private async execute(s: ScheduleEntity, o: OccurrenceEntity): Promise<void> {
    const claimToken = o.runId as string;
    if (this.afterClaim) await this.afterClaim(o);
    if (!s.createdBy) return this.skipClaimed(o, claimToken, 'the user who created the schedule no longer exists');
    try {
      const run = await this.executions.createOnBehalf(s.createdBy, s.projectId, s.run, claimToken, async (tx) => {
        const r = await tx.getRepository(OccurrenceEntity).update({ id: o.id, status: 'firing', runId: claimToken }, { status: 'running', firedAt: this.clock.now(), leaseUntil: null });
        return r.affected === 1;
      });
      // Only the node whose claim held gets a run back, so the slot is published once.
      if (run) this.events.publish('schedule.fired', { projectId: s.projectId, scheduleId: s.id, scheduleName: s.name, fireAt: o.fireAt, onBehalfOf: s.createdBy, run });
    } catch (err) {
      if (!(err instanceof ApiException) || err.getStatus() >= 500) throw err;
      const why = err.getStatus() === 400 && /matches no machine/.test(JSON.stringify(err.getResponse())) ? 'no machine matches the targets' : err.message;
      await this.skipClaimed(o, claimToken, err.getStatus() === 404 || err.getStatus() === 403 ? `the schedule's creator may no longer run scripts in this project (${why})` : why);
    }
  }

  private async skipClaimed(o: OccurrenceEntity, claimToken: string, reason: string): Promise<void> {
    await this.occurrences.update({ id: o.id, status: 'firing', runId: claimToken }, { status: 'skipped', reason: reason.slice(0, 500), finishedAt: this.clock.now(), leaseUntil: null, runId: null });
  }

  /** Claims whose node did not finish them (it died, or hangs): a new claim token, then the same firing. */
  private async takeOverStale(): Promise<void> {
    const now = this.clock.now();
    const stale = await this.occurrences.find({ where: { status: 'firing', leaseUntil: LessThan(now) }, take: BATCH });
    for (const o of stale) {
      const token = randomUUID();
      const r = await this.occurrences.update({ id: o.id, status: 'firing', runId: o.runId as string }, { runId: token, leaseUntil: new Date(now.getTime() + LEASE_MS) });
      if (r.affected !== 1) continue; // another node took it first
      const s = await this.schedules.findOne({ where: { id: o.scheduleId } });
      if (!s) continue;
      await this.execute(s, { ...o, runId: token }).catch((err: unknown) => this.logger.warn({ err: String(err), occurrenceId: o.id }, 'taking over an occurrence failed'));
    }
  }

  /**
   * Running occurrences whose executions are all final get their outcome
   * (failed when any did not succeed); then each schedule with nothing
   * running and occurrences queued starts the oldest of them.
   */
  private async settle(): Promise<void> {
    const running = await this.occurrences.find({ where: { status: 'running' }, take: 500 });
    const runs = await this.executions.byRuns(running.map((o) => o.runId as string));
    const freed = new Set<string>();
    for (const o of running) {
      const ex = runs.get(o.runId as string) ?? [];
      if (!ex.every((e) => isFinalStatus(e.status))) continue;
      const ok = ex.length > 0 && ex.every((e) => e.status === ('succeeded' as ExecutionStatus));
      const failures = ex.filter((e) => e.status !== 'succeeded').map((e) => e.status);
      const r = await this.occurrences.update(
        { id: o.id, status: 'running' },
        { status: ok ? 'succeeded' : 'failed', finishedAt: this.clock.now(), reason: ok ? o.reason : `${failures.length} of ${ex.length} executions ${[...new Set(failures)].join('/')}` },
      );
      if (r.affected) freed.add(o.scheduleId);
    }
    const queued = await this.occurrences.find({ where: { status: 'queued' }, order: { fireAt: 'ASC' }, take: BATCH });
    const seen = new Set<string>();
    for (const q of queued) {
      if (seen.has(q.scheduleId)) continue;
      seen.add(q.scheduleId);
      const busy = await this.occurrences.count({ where: { scheduleId: q.scheduleId, status: In(['firing', 'running'] as OccurrenceStatus[]) } });
      if (busy) continue;
      const token = randomUUID();
      const r = await this.occurrences.update({ id: q.id, status: 'queued' }, { status: 'firing', runId: token, leaseUntil: new Date(this.clock.now().getTime() + LEASE_MS) });
      if (r.affected !== 1) continue;
      const s = await this.schedules.findOne({ where: { id: q.scheduleId } });
      if (s) await this.execute(s, { ...q, status: 'firing', runId: token }).catch((err: unknown) => this.logger.warn({ err: String(err), occurrenceId: q.id }, 'starting a queued occurrence failed'));
    }
  }
}
