import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { AgentEvents, ErrorCode } from '@kapitan/shared';
import { AgentChannel } from '../agent-channel/agent-channel';
import { isDatabaseUnavailable } from '../common/exception.filter';
import { MetricsService } from './metrics.service';

/**
 * `metrics:sample` on `/agent`. The gateway has applied the rate limit and
 * the schema (strict: a payload naming a machine, or with a NaN, a negative
 * or an oversized array, is refused and logged before it gets here). The
 * sample is filed under the machine bound to the socket.
 */
@Injectable()
export class MetricsAgentHandlers implements OnModuleInit {
  private readonly logger = new Logger(MetricsAgentHandlers.name);

  constructor(
    private readonly channel: AgentChannel,
    private readonly metrics: MetricsService,
  ) {}

  onModuleInit(): void {
    this.channel.handle(AgentEvents.metricsSample, {
      handle: (ctx, p) =>
        this.metrics.record(ctx.machineId, ctx.projectId, p).then(
          () => ({ ok: true as const }),
          (err: unknown) => {
            this.logger.warn({ err: String(err), machineId: ctx.machineId }, 'could not store a metrics sample');
            // lossy by design: the agent does not resend, the next sample follows
            return { ok: false as const, error: { code: ErrorCode.unavailable, message: isDatabaseUnavailable(err) ? 'storage unavailable' : 'could not store' } };
          },
        ),
    });
  }
}
