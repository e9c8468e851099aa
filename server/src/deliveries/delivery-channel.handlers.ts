import { Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { AgentEvents, ErrorAckBody, ErrorCode, LiveServerEvents, Rooms, ServerToAgentEvents } from '@kapitan/shared';
import { AgentChannel } from '../agent-channel/agent-channel';
import { DomainEventsService } from '../common/events.service';
import { AgentFileGrants } from '../files/agent-file-grants';
import { FileReferences } from '../files/file-references';
import { LiveChannel } from '../live/live-channel';
import { DeliveryLifecycleService } from './delivery-lifecycle.service';

const unavailable = (): { ok: false; error: ErrorAckBody } => ({ ok: false, error: { code: ErrorCode.unavailable, message: 'could not store; send again later' } });

/**
 * Where deliveries meet the rest: on `/agent`, which deliveries a machine
 * owns, what its hello (re)sends, its progress and finished reports (after
 * the gateway's rate limit, schema and ownership check); on `/live`, each
 * machine's part to the project's room; and, in the files feature, which
 * file a pending delivery still needs (no delete) and which machine may
 * download which file.
 */
@Injectable()
export class DeliveryChannelHandlers implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger(DeliveryChannelHandlers.name);
  private readonly unregister: (() => void)[] = [];

  constructor(
    private readonly agents: AgentChannel,
    private readonly live: LiveChannel,
    private readonly lifecycle: DeliveryLifecycleService,
    private readonly events: DomainEventsService,
    private readonly references: FileReferences,
    private readonly grants: AgentFileGrants,
  ) {}

  onModuleInit(): void {
    const byDelivery = { kind: 'delivery' as const, id: (p: { deliveryId: string }) => p.deliveryId };
    this.agents.ownership('delivery', (machineId, ids) => this.lifecycle.ownedBy(machineId, ids));

    this.agents.onHello(async (ctx) => {
      const plan = await this.lifecycle.planForHello(ctx.machineId);
      this.agents.grant(ctx.machineId, 'delivery', plan.map((d) => d.deliveryId));
      for (const d of plan) ctx.emit(ServerToAgentEvents.deliver, d);
    });

    this.agents.handle(AgentEvents.deliveryProgress, {
      owns: byDelivery,
      handle: async (ctx, p) => {
        try {
          await this.lifecycle.progress(ctx.machineId, p);
          return { ok: true };
        } catch (err) {
          this.logger.warn({ err: String(err), deliveryId: p.deliveryId }, 'could not store delivery progress');
          return unavailable();
        }
      },
    });

    this.agents.handle(AgentEvents.deliveryFinished, {
      owns: byDelivery,
      handle: async (ctx, p) => {
        try {
          await this.lifecycle.finished(ctx.machineId, p);
          ctx.release('delivery', p.deliveryId);
          return { ok: true };
        } catch (err) {
          this.logger.warn({ err: String(err), deliveryId: p.deliveryId }, 'could not store delivery result');
          return unavailable();
        }
      },
    });

    this.events.on('delivery.dispatch', (e) => {
      this.agents.grant(e.machineId, 'delivery', e.payloads.map((d) => d.deliveryId));
      for (const d of e.payloads) this.agents.toMachine(e.machineId, ServerToAgentEvents.deliver, d);
    });

    this.events.on('machine.revoked', (e) =>
      this.lifecycle.machineGone(e.machineId).catch((err: unknown) => this.logger.warn({ err: String(err), machineId: e.machineId }, 'could not end the deliveries of a revoked machine')),
    );

    this.live.forward({
      'delivery.updated': (e) => ({ rooms: [Rooms.project(e.projectId)], event: LiveServerEvents.delivery, payload: e }),
    });

    this.unregister.push(
      this.references.register('deliveries', (f) => this.lifecycle.pendingUsing(f.id)),
      this.grants.register('deliveries', (machineId, fileId) => this.lifecycle.machineNeedsFile(machineId, fileId)),
    );
  }

  onModuleDestroy(): void {
    for (const u of this.unregister.splice(0)) u();
  }
}
