import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { ErrorCode, LiveClientEvents, LiveServerEvents, Rooms } from '@kapitan/shared';
import { LiveChannel } from '../live/live-channel';
import { ContainerLogsService } from './container-logs.service';
import { ContainerStateService } from './container-state.service';

/** What the containers feature does on `/live`: log subscriptions, and its rows of the domain-event → room table. */
@Injectable()
export class ContainerLiveHandlers implements OnModuleInit {
  private readonly logger = new Logger(ContainerLiveHandlers.name);

  constructor(
    private readonly channel: LiveChannel,
    private readonly state: ContainerStateService,
    private readonly logs: ContainerLogsService,
  ) {}

  onModuleInit(): void {
    this.channel.handle(LiveClientEvents.subscribeContainerLogs, async (ctx, p) => {
      const refused = { ok: false as const, error: { code: ErrorCode.notFound, message: 'container not found' } };
      let projectId: string;
      try {
        projectId = await this.state.visibleMachine(ctx.userId, p.machineId, 'viewer');
      } catch {
        this.logger.warn({ userId: ctx.userId, machineId: p.machineId }, 'container log subscription refused');
        return refused;
      }
      if (!(await this.state.has(p.machineId, p.containerId))) return refused;
      const { streamId, room } = this.logs.open(p.machineId);
      if (!(await ctx.join(room, projectId))) return refused;
      this.logs.start(streamId, p.machineId, p.containerId, p.tail);
      return { ok: true, streamId };
    });
    this.channel.handle(LiveClientEvents.unsubscribeContainerLogs, async (ctx, p) => {
      // Only the socket watching the stream can end it; anyone else's stream id changes nothing.
      const room = this.logs.roomOf(p.streamId);
      if (room && ctx.inRoom(room)) {
        await ctx.leave(room);
        this.logs.stop(p.streamId);
      }
      return { ok: true };
    });

    this.channel.forward({
      'containers.updated': (e) => ({ rooms: [Rooms.project(e.projectId)], event: LiveServerEvents.containers, payload: e }),
      'docker.status': (e) => ({ rooms: [Rooms.project(e.projectId)], event: LiveServerEvents.dockerStatus, payload: e }),
      'container-operation.updated': (e) => ({ rooms: [Rooms.project(e.projectId)], event: LiveServerEvents.containerOperation, payload: e }),
      'container.logs': (e) => ({
        rooms: [Rooms.containerLogs(e.machineId, e.streamId)],
        event: LiveServerEvents.containerLogs,
        payload: { streamId: e.streamId, lines: e.lines, ...(e.dropped ? { dropped: e.dropped } : {}), ...(e.ended ? { ended: true, reason: e.reason } : {}) },
      }),
    });
  }
}
