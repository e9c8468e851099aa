import { Inject, Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { Rooms, ServerToAgentEvents } from '@kapitan/shared';
import { AgentChannel } from '../agent-channel/agent-channel';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { LiveChannel } from '../live/live-channel';

/**
 * Which machines this node's dashboard sockets watch, and the lease that
 * keeps their agents sampling fast — the pattern of the container log
 * follows. Watchers of a machine join its `machine-metrics:<machine>` room;
 * while the room has members on this node, this node renews the watch
 * (`metrics:watch`, routed to the agent whichever node holds it). When the
 * last one leaves, or this node dies, nobody renews and the agent falls back
 * to its idle interval within the lease. Several nodes may watch the same
 * machine; each renews its own, the agent keeps the latest lease.
 */
@Injectable()
export class MetricsWatchService implements OnModuleInit, OnModuleDestroy {
  private readonly watched = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly agents: AgentChannel,
    private readonly live: LiveChannel,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onModuleInit(): void {
    this.timer = setInterval(() => this.check(), Math.min(2000, Math.floor(this.config.metrics.watchLeaseMs / 3)));
    this.timer.unref();
  }

  onModuleDestroy(): void {
    if (this.timer) clearInterval(this.timer);
    this.watched.clear();
  }

  /** A socket of this node now watches the machine: tell the agent at once. */
  watch(machineId: string): void {
    this.watched.set(machineId, Date.now());
    this.send(machineId);
  }

  /** Machines this node watches now (tests). */
  watching(): string[] {
    return [...this.watched.keys()];
  }

  /** Also called by tests to look at once instead of waiting for the timer. */
  check(): void {
    const now = Date.now();
    for (const [machineId, renewedAt] of [...this.watched]) {
      if (this.live.localRoomSize(Rooms.machineMetrics(machineId)) === 0) {
        this.watched.delete(machineId);
        continue;
      }
      if (now - renewedAt >= this.config.metrics.watchLeaseMs / 3) {
        this.watched.set(machineId, now);
        this.send(machineId);
      }
    }
  }

  private send(machineId: string): void {
    this.agents.toMachine(machineId, ServerToAgentEvents.metricsWatch, { intervalMs: this.config.metrics.watchIntervalMs, leaseMs: this.config.metrics.watchLeaseMs });
  }
}
