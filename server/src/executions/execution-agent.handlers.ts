import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { AgentEvents, ErrorAckBody, ErrorCode, ServerToAgentEvents } from '@kapitan/shared';
import { AgentChannel } from '../agent-channel/agent-channel';
import { isDatabaseUnavailable } from '../common/exception.filter';
import { DomainEventsService } from '../common/events.service';
import { ExecutionLifecycleService } from './execution-lifecycle.service';

const fail = (code: ErrorAckBody['code'], message: string): { ok: false; error: ErrorAckBody } => ({ ok: false, error: { code, message } });

/**
 * What the executions feature does on `/agent`: which executions a machine
 * owns, what a hello (re)starts or cancels, the started / output / finished
 * reports, and the dispatch and cancel pushes. The channel has already
 * applied the rate limit, the schema and the ownership check to every
 * payload that reaches these handlers.
 */
@Injectable()
export class ExecutionAgentHandlers implements OnModuleInit {
  private readonly logger = new Logger(ExecutionAgentHandlers.name);

  constructor(
    private readonly channel: AgentChannel,
    private readonly lifecycle: ExecutionLifecycleService,
    private readonly events: DomainEventsService,
  ) {}

  onModuleInit(): void {
    const byExecution = { kind: 'execution' as const, id: (p: { executionId: string }) => p.executionId };
    this.channel.ownership('execution', (machineId, ids) => this.lifecycle.ownedBy(machineId, ids));

    this.channel.onHello(async (ctx, hello) => {
      const plan = await this.lifecycle.planForHello(ctx.machineId, hello.activeExecutionIds);
      this.channel.grant(ctx.machineId, 'execution', plan.owned);
      for (const d of plan.dispatch) ctx.emit(ServerToAgentEvents.dispatch, d);
      for (const executionId of plan.cancel) ctx.emit(ServerToAgentEvents.cancel, { executionId });
    });

    this.channel.handle(AgentEvents.executionStarted, {
      owns: byExecution,
      handle: async (ctx, p) => {
        if (await this.lifecycle.started(ctx.machineId, p)) return { ok: true };
        ctx.emit(ServerToAgentEvents.cancel, { executionId: p.executionId });
        return fail(ErrorCode.conflict, 'execution was cancelled or has finished; it must not run');
      },
    });

    this.channel.handle(AgentEvents.executionOutput, {
      owns: byExecution,
      handle: async (ctx, p) => {
        try {
          await this.lifecycle.output(p.executionId, p.chunks);
          return { ok: true, stored: p.chunks.length };
        } catch (err) {
          return this.storageFailed(err, ctx.machineId, p.executionId);
        }
      },
    });

    this.channel.handle(AgentEvents.executionFinished, {
      owns: byExecution,
      handle: async (ctx, p) => {
        try {
          await this.lifecycle.finished(ctx.machineId, p);
          // Its last report: the ownership cache of a long-lived connection does not grow with every run.
          ctx.release('execution', p.executionId);
          return { ok: true };
        } catch (err) {
          return this.storageFailed(err, ctx.machineId, p.executionId);
        }
      },
    });

    this.events.on('execution.dispatch', async (e) => {
      const payloads = e.payloads ?? (await this.lifecycle.dispatchPayloads(e.executionIds));
      // This node's socket of the machine knows these executions are its own: no ownership read at its first report.
      this.channel.grant(e.machineId, 'execution', payloads.map((d) => d.executionId));
      for (const d of payloads) this.channel.toMachine(e.machineId, ServerToAgentEvents.dispatch, d);
    });

    this.events.on('execution.cancel', (e) => this.channel.toMachine(e.machineId, ServerToAgentEvents.cancel, { executionId: e.executionId }));
  }

  /**
   * The agent keeps what was not stored and sends it again; `service_unavailable` tells it to.
   * Unless the execution is gone: executions are deleted only with their project (and its
   * machines), so sending again could never succeed — the answer is final (threat model T46).
   * Asked only on failure, and of this execution alone: a batch that failed for another
   * project's deleted run must not stop this machine.
   */
  private async storageFailed(err: unknown, machineId: string, executionId: string): Promise<{ ok: false; error: ErrorAckBody }> {
    if (!isDatabaseUnavailable(err) && !(await this.lifecycle.ownedBy(machineId, [executionId]).catch(() => new Set([executionId]))).has(executionId)) {
      this.logger.warn({ machineId, executionId }, 'agent reported on an execution deleted with its project: refused for good');
      return fail(ErrorCode.machineRevoked, 'this execution was deleted with its project; this machine is no longer enrolled');
    }
    this.logger.warn({ err: String(err) }, 'could not store agent report');
    return isDatabaseUnavailable(err)
      ? fail(ErrorCode.unavailable, 'storage unavailable; send again later')
      : fail(ErrorCode.unavailable, 'could not store; send again later');
  }
}
