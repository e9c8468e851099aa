import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { ErrorCode, LiveClientEvents, Rooms } from '@kapitan/shared';
import { LiveChannel } from '../live/live-channel';
import { ProjectsService } from './projects.service';

/** The projects feature on `/live`: a member joins and leaves its project's room. */
@Injectable()
export class ProjectLiveHandlers implements OnModuleInit {
  private readonly logger = new Logger(ProjectLiveHandlers.name);

  constructor(
    private readonly channel: LiveChannel,
    private readonly projects: ProjectsService,
  ) {}

  onModuleInit(): void {
    this.channel.handle(LiveClientEvents.subscribeProject, async (ctx, p) => {
      const member = !!(await this.projects.roleOf(ctx.userId, p.projectId)) && (await ctx.join(Rooms.project(p.projectId), p.projectId));
      if (!member) {
        this.logger.warn({ userId: ctx.userId, projectId: p.projectId }, 'live subscription refused: not a member');
        return { ok: false, error: { code: ErrorCode.notFound, message: 'project not found' } };
      }
      return { ok: true };
    });
    this.channel.handle(LiveClientEvents.unsubscribeProject, async (ctx, p) => {
      await ctx.leave(Rooms.project(p.projectId));
      return { ok: true };
    });
  }
}
