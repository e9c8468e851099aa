import { Injectable, OnModuleInit } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { DeliveryDispatch, DeliveryFinished, DeliveryProgress, DeliveryStatus, DeliveryTransfer, FINAL_DELIVERY_STATUSES } from '@kapitan/shared';
import { In, LessThan, Repository } from 'typeorm';
import { DomainEventsService } from '../common/events.service';
import { SchedulerService } from '../common/scheduler.service';
import { TickBatcher } from '../common/tick-batcher';
import { DeliveryEntity, DeliveryMachineEntity } from './delivery.entity';
import { toDispatch, toMachineDto } from './delivery.mapper';

export const DELIVERY_SWEEP_EVERY_MS = 10_000;
const OPEN: DeliveryStatus[] = ['queued', 'dispatched', 'downloading', 'writing', 'loading'];
const FINAL = FINAL_DELIVERY_STATUSES as DeliveryStatus[];

/**
 * One machine's part of a delivery, as a state machine: queued →
 * dispatched → downloading → writing | loading → succeeded | failed |
 * expired. Every step is a conditional UPDATE from the states it may follow,
 * so repeated or late reports (delivery is at least once) change nothing
 * once the part is final: the result is applied once.
 */
@Injectable()
export class DeliveryLifecycleService implements OnModuleInit {
  /** The hellos of one turn (a reconnect storm) read their machines' open parts in one query. */
  private readonly openParts = new TickBatcher<string, DeliveryMachineEntity[]>(
    async (machineIds) => {
      const open = new Map<string, DeliveryMachineEntity[]>();
      for (const part of await this.parts.find({ where: { machineId: In(machineIds), status: In(OPEN) } })) {
        let list = open.get(part.machineId);
        if (!list) open.set(part.machineId, (list = []));
        list.push(part);
      }
      return open;
    },
    // The plan changes the parts it dispatches: each hello gets its own copies.
    { max: 200, copy: (list) => list.map((part) => Object.assign(new DeliveryMachineEntity(), part)) },
  );

  constructor(
    @InjectRepository(DeliveryEntity) private readonly deliveries: Repository<DeliveryEntity>,
    @InjectRepository(DeliveryMachineEntity) private readonly parts: Repository<DeliveryMachineEntity>,
    private readonly events: DomainEventsService,
    private readonly scheduler: SchedulerService,
  ) {}

  onModuleInit(): void {
    this.scheduler.every('deliveries.sweep', DELIVERY_SWEEP_EVERY_MS, () => this.sweep());
  }

  /** Which of `deliveryIds` have a part on this machine, as stored. */
  async ownedBy(machineId: string, deliveryIds: readonly string[]): Promise<Set<string>> {
    if (!deliveryIds.length) return new Set();
    const rows = await this.parts.find({ where: { machineId, deliveryId: In([...deliveryIds]) }, select: ['deliveryId'] });
    return new Set(rows.map((r) => r.deliveryId));
  }

  /** Does this machine have an open part of a delivery of this file? (what lets its agent download the file) */
  async machineNeedsFile(machineId: string, fileId: string): Promise<boolean> {
    const n = await this.parts
      .createQueryBuilder('m')
      .innerJoin(DeliveryEntity, 'd', 'd.id = m.deliveryId')
      .where('m.machineId = :machineId AND d.fileId = :fileId AND m.status IN (:...open)', { machineId, fileId, open: OPEN })
      .getCount();
    return n > 0;
  }

  /** What still holds a file: deliveries with open parts, for the delete guard. */
  async pendingUsing(fileId: string): Promise<string[]> {
    const rows: { id: string; kind: string; n: string | number }[] = await this.parts
      .createQueryBuilder('m')
      .innerJoin(DeliveryEntity, 'd', 'd.id = m.deliveryId')
      .select('d.id', 'id')
      .addSelect('d.kind', 'kind')
      .addSelect('COUNT(*)', 'n')
      .where('d.fileId = :fileId AND m.status IN (:...open)', { fileId, open: OPEN })
      .groupBy('d.id')
      .addGroupBy('d.kind')
      .getRawMany();
    return rows.map((r) => `${r.kind} ${r.id} (pending on ${Number(r.n)} machine${Number(r.n) === 1 ? '' : 's'})`);
  }

  /**
   * A machine said hello: everything of it not final is sent (again) —
   * the agent applies each delivery once and answers a repeat with the
   * result it has. Parts past their delivery's expiry end `expired` instead.
   */
  async planForHello(machineId: string): Promise<DeliveryDispatch[]> {
    const open = (await this.openParts.get(machineId)) ?? [];
    if (!open.length) return [];
    const byId = new Map((await this.deliveries.find({ where: { id: In(open.map((p) => p.deliveryId)) } })).map((d) => [d.id, d]));
    const now = new Date();
    const out: DeliveryDispatch[] = [];
    for (const part of open) {
      const d = byId.get(part.deliveryId);
      if (!d) continue;
      if (d.expiresAt <= now && (part.status === 'queued' || part.status === 'dispatched')) {
        await this.transition(part, d, ['queued', 'dispatched'], { status: 'expired', reason: 'the machine stayed offline until the delivery expired', finishedAt: now });
        continue;
      }
      if (part.status === 'queued') await this.transition(part, d, ['queued'], { status: 'dispatched', dispatchedAt: now });
      out.push(toDispatch(d));
    }
    return out;
  }

  async progress(machineId: string, p: DeliveryProgress): Promise<void> {
    const { part, delivery } = await this.load(machineId, p.deliveryId);
    if (!part || !delivery) return;
    // Each state only moves forward: a late "downloading" after "writing" is not applied.
    const before: Record<DeliveryProgress['status'], DeliveryStatus[]> = {
      downloading: ['queued', 'dispatched', 'downloading'],
      writing: ['queued', 'dispatched', 'downloading', 'writing'],
      loading: ['queued', 'dispatched', 'downloading', 'loading'],
    };
    const received = Math.min(p.receivedBytes, delivery.size);
    await this.transition(part, delivery, before[p.status], { status: p.status, receivedBytes: received, ...transferColumns(p.transfer, delivery) });
  }

  async finished(machineId: string, p: DeliveryFinished): Promise<void> {
    const { part, delivery } = await this.load(machineId, p.deliveryId);
    if (!part || !delivery) return;
    const ok = p.status === 'succeeded';
    await this.transition(part, delivery, OPEN, {
      status: p.status,
      reason: p.reason ?? null,
      imageId: p.imageId ?? null,
      finishedAt: new Date(),
      ...(ok ? { receivedBytes: delivery.size } : {}),
      ...transferColumns(p.transfer, delivery),
    });
  }

  /**
   * Past its delivery's expiry, a part still waiting for its machine ends
   * `expired`; one the machine started but never reported on ends `failed`
   * (an agent that was wiped or replaced mid-delivery would otherwise hold the
   * file forever). Idempotent on every node.
   */
  async sweep(): Promise<void> {
    const now = new Date();
    const expired = await this.deliveries.find({ where: { expiresAt: LessThan(now) }, select: ['id', 'projectId', 'kind', 'size'], take: 1000, order: { expiresAt: 'DESC' } });
    if (!expired.length) return;
    const byId = new Map(expired.map((d) => [d.id, d]));
    const open = await this.parts.find({ where: { deliveryId: In([...byId.keys()]), status: In(OPEN) }, take: 5000 });
    for (const part of open) {
      const waiting = part.status === 'queued' || part.status === 'dispatched';
      await this.transition(part, byId.get(part.deliveryId)!, [part.status], {
        status: waiting ? 'expired' : 'failed',
        reason: waiting ? 'the machine stayed offline until the delivery expired' : 'the machine reported no result before the delivery expired',
        finishedAt: now,
      });
    }
  }

  /** A machine was revoked: nothing it owes will come, so its open parts fail now and release their file. */
  async machineGone(machineId: string): Promise<void> {
    const open = await this.parts.find({ where: { machineId, status: In(OPEN) } });
    if (!open.length) return;
    const byId = new Map((await this.deliveries.find({ where: { id: In(open.map((p) => p.deliveryId)) }, select: ['id', 'projectId', 'kind', 'size'] })).map((d) => [d.id, d]));
    for (const part of open) {
      const d = byId.get(part.deliveryId);
      if (d) await this.transition(part, d, OPEN, { status: 'failed', reason: 'the machine was revoked', finishedAt: new Date() });
    }
  }

  private async load(machineId: string, deliveryId: string): Promise<{ part: DeliveryMachineEntity | null; delivery: DeliveryEntity | null }> {
    const part = await this.parts.findOne({ where: { deliveryId, machineId } });
    if (!part || FINAL.includes(part.status)) return { part: null, delivery: null };
    return { part, delivery: await this.deliveries.findOne({ where: { id: deliveryId } }) };
  }

  /** Conditional step: applied only from `from`; publishes the part as it is now. */
  private async transition(part: DeliveryMachineEntity, d: Pick<DeliveryEntity, 'projectId' | 'kind' | 'size'>, from: DeliveryStatus[], patch: Partial<DeliveryMachineEntity>): Promise<boolean> {
    const updatedAt = new Date();
    const r = await this.parts.update({ deliveryId: part.deliveryId, machineId: part.machineId, status: In(from) }, { ...patch, updatedAt });
    if (!r.affected) return false;
    Object.assign(part, patch, { updatedAt });
    this.events.publish('delivery.updated', { projectId: d.projectId, kind: d.kind, machine: toMachineDto(part, d) });
    return true;
  }
}

/**
 * The agent's account of what moved, as columns. Its own count, not checked
 * (the server does not meter each machine's downloads): bounded to the file's
 * size, which no honest count exceeds; layers only for a distribution.
 */
function transferColumns(t: DeliveryTransfer | undefined, d: Pick<DeliveryEntity, 'size' | 'kind'>): Partial<DeliveryMachineEntity> {
  if (!t) return {};
  const layers = d.kind === 'distribution' ? t.layers : null;
  return { movedBytes: Math.min(t.movedBytes, d.size), layersPresent: layers?.present ?? null, layersTotal: layers?.total ?? null };
}
