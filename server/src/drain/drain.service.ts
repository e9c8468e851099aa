import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Server } from 'node:net';
import { APP_CONFIG, AppConfig } from '../config/config';

/** What a feature does when its node starts to stop: move its clients elsewhere, then wait for its own writes. */
export type DrainParticipant = () => Promise<void>;

/**
 * A node that is told to stop (SIGTERM) drains before Nest closes it
 * (docs/design.md "Stopping a node"): it stops accepting connections and
 * answers /api/health 503, so the load balancer sends nothing new; it tells
 * every agent and dashboard on it to move (`server:draining`, then the
 * socket is dropped; they reconnect at once and the balancer takes them to
 * another node); and it waits for the writes those sockets started (output
 * batches, transitions). Only then do the shutdown hooks run. The whole stop
 * is bounded by KAPITAN_SHUTDOWN_TIMEOUT_SECONDS (main.ts).
 */
@Injectable()
export class DrainService {
  private readonly logger = new Logger(DrainService.name);
  private readonly participants: { name: string; run: DrainParticipant }[] = [];
  private started: Promise<void> | null = null;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  /** True from the moment the node starts to stop: health answers 503, handshakes are refused. */
  get draining(): boolean {
    return this.started !== null;
  }

  /** Registered by a feature in its onModuleInit; all run at once (one's wait for its writes holds up no other's move). */
  onDrain(name: string, run: DrainParticipant): void {
    this.participants.push({ name, run });
  }

  /** Idempotent: a second signal waits for the same drain. */
  drain(listeners: readonly (Server | undefined)[]): Promise<void> {
    this.started ??= this.run(listeners);
    return this.started;
  }

  private async run(listeners: readonly (Server | undefined)[]): Promise<void> {
    const began = Date.now();
    this.logger.log({ nodeId: this.config.nodeId }, 'node stopping: draining (no new connections, clients told to move)');
    // No new connections: a balancer's next connect or health check fails and it redispatches at once.
    // Established ones (sockets, requests under way) stay until each part below lets them go.
    for (const l of listeners) if (l?.listening) l.close();
    await Promise.all(
      this.participants.map((p) =>
        p.run().catch((err: unknown) => this.logger.warn({ err: String(err), participant: p.name }, 'drain step failed; stopping anyway')),
      ),
    );
    this.logger.log({ ms: Date.now() - began }, 'node drained');
  }
}
