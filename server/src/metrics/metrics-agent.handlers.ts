import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { AgentEvents, ErrorCode } from '@kapitan/shared';
import { AgentChannel } from '../agent-channel/agent-channel';
import { isDatabaseUnavailable } from '../common/exception.filter';
import { DomainEventsService } from '../common/events.service';
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
    private readonly events: DomainEventsService,
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
    // what this node remembers of a machine's last stored sample goes with its connection
    this.events.on('machine.updated', (e) => {
      if (e.machine.status === 'offline') this.metrics.forget(e.machine.id);
    });
    this.events.on('machine.revoked', (e) => this.metrics.forget(e.machineId));
  }
}
