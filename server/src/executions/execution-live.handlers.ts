import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { ErrorAckBody, ErrorCode, ExecutionChunksAck, LiveClientEvents, LIMITS, LiveServerEvents, Rooms } from '@kapitan/shared';
import { ApiException } from '../common/api-exception';
import { LiveChannel, type LiveContext } from '../live/live-channel';
import { ExecutionLogService } from './execution-log.service';
import { toSummary } from './execution.mapper';
import { ExecutionsService } from './executions.service';

const fail = (code: ErrorAckBody['code'], message: string): { ok: false; error: ErrorAckBody } => ({ ok: false, error: { code, message } });

/**
 * What the executions feature does on `/live`: a viewer joins an
 * execution's room (history, then the live tail), pages its history, leaves;
 * and its rows of the domain-event → room table.
 */
@Injectable()
export class ExecutionLiveHandlers implements OnModuleInit {
  private readonly logger = new Logger(ExecutionLiveHandlers.name);

  constructor(
    private readonly channel: LiveChannel,
    private readonly executions: ExecutionsService,
    private readonly logs: ExecutionLogService,
  ) {}

  onModuleInit(): void {
    /** Join first, then read history: a chunk stored meanwhile arrives both ways and the client drops the repeat by seq. */
    const heavy = { heavy: true }; // each reads up to a page of the log
    this.channel.handle(LiveClientEvents.subscribeExecution, (ctx, p) => this.history(ctx, p.executionId, p.fromSeq, LIMITS.logPageMax, true), heavy);
    this.channel.handle(LiveClientEvents.executionHistory, (ctx, p) => this.history(ctx, p.executionId, p.fromSeq, p.limit ?? LIMITS.logPageMax, false), heavy);
    this.channel.handle(LiveClientEvents.unsubscribeExecution, async (ctx, p) => {
      await ctx.leave(Rooms.execution(p.executionId));
      return { ok: true };
    });

    this.channel.forward({
      'execution.output': (e) => ({ rooms: [Rooms.execution(e.executionId)], event: LiveServerEvents.output, payload: e }),
      'execution.updated': (e) => ({ rooms: [Rooms.project(e.projectId), Rooms.execution(e.execution.id)], event: LiveServerEvents.execution, payload: e }),
    });
  }

  private async history(ctx: LiveContext, id: string, fromSeq: number, limit: number, join: boolean): Promise<ExecutionChunksAck> {
    let e;
    try {
      // A socket in the project's room was checked when it joined and is evicted when removed; the join
      // below checks the membership once more after the room is entered, which closes the race with a removal.
      e = await this.executions.findVisible(ctx.userId, id, 'viewer', join ? (projectId) => ctx.inRoom(Rooms.project(projectId)) : undefined);
    } catch (err) {
      if (!(err instanceof ApiException)) throw err;
      e = null;
    }
    if (!e || (join && !(await ctx.join(Rooms.execution(id), e.projectId)))) {
      this.logger.warn({ userId: ctx.userId, executionId: id }, 'live execution subscription refused');
      return fail(ErrorCode.notFound, 'execution not found');
    }
    const page = join ? await this.logs.historyForJoin(e, fromSeq, limit) : await this.logs.logPage(e, fromSeq, limit);
    return { ok: true, execution: toSummary(e), chunks: page.chunks, nextSeq: page.nextSeq };
  }
}
