import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { ErrorCode, LiveClientEvents, LiveServerEvents, Rooms } from '@kapitan/shared';
import { LiveChannel } from '../live/live-channel';
import { MetricsWatchService } from './metrics-watch.service';
import { MetricsService } from './metrics.service';

/** What the metrics feature does on `/live`: watching a machine, and its rows of the domain-event → room table. */
@Injectable()
export class MetricsLiveHandlers implements OnModuleInit {
  private readonly logger = new Logger(MetricsLiveHandlers.name);

  constructor(
    private readonly channel: LiveChannel,
    private readonly metrics: MetricsService,
    private readonly watch: MetricsWatchService,
  ) {}

  onModuleInit(): void {
    this.channel.handle(LiveClientEvents.subscribeMachineMetrics, async (ctx, p) => {
      const projectId = await this.metrics.projectIfVisible(ctx.userId, p.machineId);
      const refused = { ok: false as const, error: { code: ErrorCode.notFound, message: 'machine not found' } };
      if (!projectId) {
        this.logger.warn({ userId: ctx.userId, machineId: p.machineId }, 'machine metrics subscription refused');
        return refused;
      }
      if (!(await ctx.join(Rooms.machineMetrics(p.machineId), projectId))) return refused;
      this.watch.watch(p.machineId);
      return { ok: true };
    });
    this.channel.handle(LiveClientEvents.unsubscribeMachineMetrics, async (ctx, p) => {
      const room = Rooms.machineMetrics(p.machineId);
      if (ctx.inRoom(room)) await ctx.leave(room);
      this.watch.check();
      return { ok: true };
    });

    this.channel.forward({
      'metrics.sample': (e) => ({ rooms: [Rooms.machineMetrics(e.machineId)], event: LiveServerEvents.metricsSample, payload: e }),
      'metrics.host': (e) => ({ rooms: [Rooms.project(e.projectId)], event: LiveServerEvents.hostMetrics, payload: e }),
    });
  }
}
