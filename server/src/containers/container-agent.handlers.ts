import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { AgentEvents, ErrorAckBody, ErrorCode, ServerToAgentEvents } from '@kapitan/shared';
import { AgentChannel } from '../agent-channel/agent-channel';
import { isDatabaseUnavailable } from '../common/exception.filter';
import { DomainEventsService } from '../common/events.service';
import { ContainerOperationsService } from './container-operations.service';
import { ContainerStateService } from './container-state.service';

const fail = (code: ErrorAckBody['code'], message: string): { ok: false; error: ErrorAckBody } => ({ ok: false, error: { code, message } });

/**
 * What the containers feature does on `/agent`. The channel has applied the
 * rate limit, the schema (strict: a payload naming a machine is refused) and,
 * for operations, the ownership check. Container rows are written for the
 * machine bound to the socket (`ctx.machineId`), never one a payload names.
 */
@Injectable()
export class ContainerAgentHandlers implements OnModuleInit {
  private readonly logger = new Logger(ContainerAgentHandlers.name);

  constructor(
    private readonly channel: AgentChannel,
    private readonly state: ContainerStateService,
    private readonly ops: ContainerOperationsService,
    private readonly events: DomainEventsService,
  ) {}

  onModuleInit(): void {
    const byOperation = { kind: 'container-operation' as const, id: (p: { operationId: string }) => p.operationId };
    this.channel.ownership('container-operation', (machineId, ids) => this.ops.ownedBy(machineId, ids));

    this.channel.onHello(async (ctx) => {
      const pending = await this.ops.pendingFor(ctx.machineId);
      this.channel.grant(ctx.machineId, 'container-operation', pending.map((d) => d.operationId));
      for (const d of pending) ctx.emit(ServerToAgentEvents.containerOperation, d);
    });

    const stored = <T>(what: string, ctx: { machineId: string }, run: () => Promise<T>) =>
      run().then(
        () => ({ ok: true as const }),
        (err: unknown) => {
          this.logger.warn({ err: String(err), machineId: ctx.machineId }, `could not store ${what}`);
          return fail(ErrorCode.unavailable, isDatabaseUnavailable(err) ? 'storage unavailable; send again later' : 'could not store; send again later');
        },
      );

    this.channel.handle(AgentEvents.dockerStatus, { handle: (ctx, p) => stored('docker status', ctx, () => this.state.setStatus(ctx.machineId, ctx.projectId, p)) });
    this.channel.handle(AgentEvents.containersSnapshot, { handle: (ctx, p) => stored('container snapshot', ctx, () => this.state.snapshotPart(ctx.machineId, ctx.projectId, p)) });
    this.channel.handle(AgentEvents.containersChanged, { handle: (ctx, p) => stored('container change', ctx, () => this.state.changed(ctx.machineId, ctx.projectId, p)) });
    this.channel.handle(AgentEvents.containerOperationStarted, { owns: byOperation, handle: (ctx, p) => stored('operation start', ctx, () => this.ops.started(p)) });
    this.channel.handle(AgentEvents.containerOperationFinished, {
      owns: byOperation,
      handle: async (ctx, p) => {
        const ack = await stored('operation result', ctx, () => this.ops.finished(p));
        if (ack.ok) ctx.release('container-operation', p.operationId);
        return ack;
      },
    });
    // Live only, never stored: forwarded to the stream's room, which is named with this socket's machine.
    this.channel.handle(AgentEvents.containerLogs, {
      handle: (ctx, p) => {
        this.events.publish('container.logs', { machineId: ctx.machineId, ...p });
        return { ok: true };
      },
    });

    this.events.on('container-operation.dispatch', (e) => {
      this.channel.grant(e.machineId, 'container-operation', [e.dispatch.operationId]);
      this.channel.toMachine(e.machineId, ServerToAgentEvents.containerOperation, e.dispatch);
    });
  }
}
