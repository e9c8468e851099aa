import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Machine, MachineFacts, PRESENCE, type ReportedPolicy } from '@kapitan/shared';
import { In, IsNull, LessThan, Repository } from 'typeorm';
import { DomainEventsService } from '../common/events.service';
import { SchedulerService } from '../common/scheduler.service';
import { APP_CONFIG, AppConfig } from '../config/config';
import { MachineEntity } from './machine.entity';
import { toMachineDto, type MachineIdentity, type MachineProfile } from './machine.mapper';

interface Holder {
  connectionId: string;
  connectedAt: Date;
}

interface PendingOnline {
  identity: MachineIdentity;
  profile: MachineProfile | null;
  connectionId: string;
  facts: MachineFacts;
  policy: ReportedPolicy | null;
  resolve: (m: Machine | null) => void;
  reject: (err: unknown) => void;
}

/** Hellos written by one UPDATE at most (facts included: a few hundred KB). */
const ONLINE_PER_STATEMENT = 300;

/** Heartbeats reach the database within this long, well inside the offline threshold (PRESENCE.offlineAfterMs). */
export const PRESENCE_UPKEEP_EVERY_MS = 5_000;

/**
 * Whether a machine is online, from its live connection plus heartbeats with
 * one threshold (PRESENCE.offlineAfterMs). The newest socket holds the
 * machine; heartbeats are gathered and written in bulk; a node that died is
 * found out by the sweep on every other node.
 */
@Injectable()
export class PresenceService implements OnModuleInit, BeforeApplicationShutdown {
  private readonly logger = new Logger(PresenceService.name);
  /** Heartbeats since the last flush, by machine: one UPDATE for all of them, not one per beat. */
  private readonly seen = new Map<string, Holder>();
  /** The socket of each machine that said hello on this node, and when: what its heartbeats re-assert. */
  private readonly held = new Map<string, Holder>();
  /** Set when the node stops: presence is then written in bulk (beforeApplicationShutdown). */
  private closing = false;
  /** Hellos not yet written: those of one turn, or that came while a write was under way, go together (markOnline). */
  private onlineQueue: PendingOnline[] = [];
  private onlineScheduled = false;
  private onlineWriting: Promise<void> | null = null;
  /** The online write of each machine not yet settled: what its offline waits for. */
  private readonly onlineWrites = new Map<string, Promise<void>>();

  constructor(
    @InjectRepository(MachineEntity) private readonly machines: Repository<MachineEntity>,
    private readonly events: DomainEventsService,
    private readonly scheduler: SchedulerService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onModuleInit(): void {
    this.scheduler.every('presence', PRESENCE_UPKEEP_EVERY_MS, async () => {
      await this.flushHeartbeats();
      await this.sweepStale();
    });
  }

  /**
   * The node drains (its agents are told to move): a socket that closes now
   * writes nothing; the agent's hello on its new node takes the machine, and
   * whatever is still held here at shutdown goes offline in one statement.
   */
  beginDrain(): void {
    this.closing = true;
  }

  /**
   * This node is stopping: every machine it holds goes offline in one
   * statement, before its sockets close, instead of one write per socket as
   * they close (5,000 of them took seconds and delayed the restart).
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.closing = true;
    this.seen.clear();
    this.held.clear();
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

  /**
   * A socket said hello: it now holds the machine (the newest socket wins).
   * No read back: the announcement is built from what the handshake read
   * (`profile`; read again if there is none) and what the hello told. The
   * hellos of one turn of the event loop (a reconnect storm) share one
   * UPDATE per ONLINE_PER_STATEMENT machines: one commit, not one each.
   * Resolves with the machine as announced, or null when nothing was
   * written (revoked, or a newer hello of the same machine in the same turn).
   */
  markOnline(
    identity: MachineIdentity,
    profile: MachineProfile | null,
    connectionId: string,
    facts: MachineFacts,
    policy: ReportedPolicy | null = null,
  ): Promise<Machine | null> {
    const written = new Promise<Machine | null>((resolve, reject) => {
      this.onlineQueue.push({ identity, profile, connectionId, facts, policy, resolve, reject });
      if (this.onlineWriting || this.onlineScheduled) return; // the write under way takes it next
      this.onlineScheduled = true;
      setImmediate(() => {
        this.onlineScheduled = false;
        this.onlineWriting ??= this.writeOnline();
      });
    });
    // What a disconnect of this machine must wait for: its offline must land after this online, not before.
    const settled = written.then(
      () => undefined,
      () => undefined,
    );
    this.onlineWrites.set(identity.machineId, settled);
    void settled.then(() => {
      if (this.onlineWrites.get(identity.machineId) === settled) this.onlineWrites.delete(identity.machineId);
    });
    return written;
  }

  /**
   * One write at a time on this node, so hellos land in the order they came:
   * a machine's newer socket is never overwritten by its older one's hello
   * still on its way (nor is `held`). Hellos that come while a write is under
   * way go in the next.
   */
  private async writeOnline(): Promise<void> {
    try {
      while (this.onlineQueue.length) {
        const queued = this.onlineQueue;
        this.onlineQueue = [];
        // One hello per machine in a statement (a CASE has one value per id): the last one wins, as one after another.
        const last = new Map<string, PendingOnline>();
        for (const o of queued) {
          last.get(o.identity.machineId)?.resolve(null);
          last.set(o.identity.machineId, o);
        }
        const all = [...last.values()];
        await Promise.all(
          Array.from({ length: Math.ceil(all.length / ONLINE_PER_STATEMENT) }, async (_, i) => {
            const batch = all.slice(i * ONLINE_PER_STATEMENT, (i + 1) * ONLINE_PER_STATEMENT);
            for (let attempt = 1; ; attempt++) {
              try {
                return await this.writeOnlineBatch(batch);
              } catch (err) {
                // One statement, rolled back whole when InnoDB picks it as a deadlock victim: written again, it applies once.
                if ((err as { code?: string }).code === 'ER_LOCK_DEADLOCK' && attempt < 3) continue;
                for (const o of batch) o.reject(err);
                return;
              }
            }
          }),
        );
      }
    } finally {
      // In the turn of the loop's last look at the queue: a later hello schedules its own write.
      this.onlineWriting = null;
    }
  }

  private async writeOnlineBatch(batch: PendingOnline[]): Promise<void> {
    const now = new Date();
    const ids = batch.map((o) => o.identity.machineId);
    const params: Record<string, unknown> = { ids };
    const byId = (value: (o: PendingOnline) => unknown, name: string): string => {
      batch.forEach((o, n) => {
        params[`id${n}`] = o.identity.machineId;
        params[`${name}${n}`] = value(o);
      });
      return `CASE id ${batch.map((_, n) => `WHEN :id${n} THEN :${name}${n}`).join(' ')} END`;
    };
    const connection = byId((o) => o.connectionId, 'c');
    // simple-json columns, written raw here: the same JSON.stringify TypeORM applies to them.
    const factsJson = byId((o) => JSON.stringify(o.facts), 'f');
    const policyJson = byId((o) => (o.policy === null ? null : JSON.stringify(o.policy)), 'p');
    const hostname = byId((o) => o.facts.hostname, 'h');
    const r = await this.machines
      .createQueryBuilder()
      .update()
      .set({
        status: 'online',
        nodeId: this.config.nodeId,
        connectedAt: now,
        lastSeenAt: now,
        connectionId: () => connection,
        facts: () => factsJson,
        // Replaced at every hello: an agent that stopped reporting one (downgraded) must not keep showing the old policy.
        policy: () => policyJson,
        hostname: () => hostname,
      })
      .where('id IN (:...ids)')
      .andWhere('revokedAt IS NULL')
      .setParameters(params)
      .execute();
    let applied: (o: PendingOnline) => boolean = () => true;
    if (r.affected !== batch.length) {
      // Some machine was not written (revoked): which, the rows say. A socket id names one connection only, so
      // a row holding ours was written by this statement (or since by this socket's own heartbeats).
      const rows = await this.machines.find({ where: { id: In(ids), revokedAt: IsNull() }, select: ['id', 'connectionId'] });
      const holder = new Map(rows.map((m) => [m.id, m.connectionId]));
      applied = (o) => holder.get(o.identity.machineId) === o.connectionId;
    }
    for (const o of batch) {
      if (!applied(o)) {
        o.resolve(null);
        continue;
      }
      const { identity, profile, connectionId, facts, policy } = o;
      this.held.set(identity.machineId, { connectionId, connectedAt: now });
      const patch: Partial<MachineEntity> = { status: 'online', connectionId, nodeId: this.config.nodeId, connectedAt: now, lastSeenAt: now, facts, policy, hostname: facts.hostname };
      try {
        const dto = toMachineDto(
          profile
            ? Object.assign(new MachineEntity(), patch, { id: identity.machineId, projectId: identity.projectId, labels: profile.labels, createdAt: profile.createdAt })
            : await this.machines.findOneByOrFail({ id: identity.machineId }),
        );
        this.events.publish('machine.updated', { projectId: identity.projectId, machine: dto });
        o.resolve(dto);
      } catch (err) {
        o.reject(err);
      }
    }
  }

  /** Only the socket that holds the machine may mark it offline; an older one's late disconnect changes nothing. */
  async markOffline(machineId: string, connectionId: string): Promise<void> {
    // Its hello's online may still be on its way to the database (markOnline): the offline goes after it.
    await this.onlineWrites.get(machineId);
    if (this.held.get(machineId)?.connectionId === connectionId) {
      this.held.delete(machineId);
      this.seen.delete(machineId);
    }
    if (this.closing) return; // beforeApplicationShutdown marked them all at once
    try {
      const r = await this.machines.update({ id: machineId, connectionId }, { status: 'offline', connectionId: null, nodeId: null, lastSeenAt: new Date() });
      if (!r.affected) return;
      const m = await this.machines.findOneBy({ id: machineId });
      if (m) this.events.publish('machine.updated', { projectId: m.projectId, machine: toMachineDto(m) });
    } catch (err) {
      // The node began stopping while this write waited for a connection (a thousand agents left at once, then
      // SIGTERM): the shutdown's one statement marks the machine offline, and the pool it waited on is closed.
      if (this.closing) return;
      throw err;
    }
  }

  /** The machines whose current hello this node holds. */
  heldHere(): string[] {
    return [...this.held.keys()];
  }

  /** A heartbeat of the socket that said hello on this node; any other socket's (closed, replaced, never greeted) counts for nothing. */
  heartbeat(machineId: string, connectionId: string): void {
    const holder = this.held.get(machineId);
    if (holder?.connectionId === connectionId) this.seen.set(machineId, holder);
  }

  /**
   * Writes the heartbeats gathered since the last call, one statement per
   * 300 machines. A heartbeat re-asserts presence, not only lastSeenAt: the
   * row says online, held by this node and this socket, so a presence write
   * that landed out of order across nodes (an older socket's late offline, a
   * lost update) heals at the next flush instead of at the sweep. A newer
   * hello on another node (a later connectedAt) is never overwritten, nor is
   * a revoked machine.
   */
  async flushHeartbeats(): Promise<void> {
    if (!this.seen.size) return;
    const beats = [...this.seen];
    this.seen.clear();
    const now = new Date();
    for (let i = 0; i < beats.length; i += 300) {
      const batch = beats.slice(i, i + 300);
      const params: Record<string, unknown> = { now, nodeId: this.config.nodeId, ids: batch.map(([id]) => id) };
      const byId = (value: (h: Holder) => unknown, name: string): string => {
        batch.forEach(([id, h], n) => {
          params[`id${n}`] = id;
          params[`${name}${n}`] = value(h);
        });
        return `CASE id ${batch.map((_, n) => `WHEN :id${n} THEN :${name}${n}`).join(' ')} END`;
      };
      const connection = byId((h) => h.connectionId, 'c');
      const connectedAt = byId((h) => h.connectedAt, 't');
      const held = `revokedAt IS NULL AND (connectionId = ${connection} OR connectedAt IS NULL OR connectedAt <= ${connectedAt})`;
      // The rows this flush corrects (rare: normally none), read first so the dashboard hears of them.
      const wrong = await this.machines
        .createQueryBuilder('m')
        .select('m.id', 'id')
        .where('id IN (:...ids)', params)
        .andWhere(held, params)
        .andWhere(`(status <> 'online' OR nodeId IS NULL OR nodeId <> :nodeId OR connectionId IS NULL OR connectionId <> ${connection})`, params)
        .getRawMany<{ id: string }>();
      await this.machines
        .createQueryBuilder()
        .update()
        .set({ lastSeenAt: now, status: 'online', nodeId: this.config.nodeId, connectionId: () => connection })
        .where('id IN (:...ids)', params)
        .andWhere(held, params)
        .setParameters(params)
        .execute();
      if (!wrong.length) continue;
      const healed = await this.machines.find({ where: { id: In(wrong.map((w) => w.id)) } });
      for (const m of healed.filter((x) => x.status === 'online' && x.nodeId === this.config.nodeId)) {
        this.events.publish('machine.updated', { projectId: m.projectId, machine: toMachineDto(m) });
      }
      this.logger.warn({ machines: healed.length }, 'heartbeats corrected the presence of machines whose row had gone wrong');
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
