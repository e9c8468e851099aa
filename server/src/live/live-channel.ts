import { Inject, Injectable } from '@nestjs/common';
import type { LiveClientToServerEventMap, liveClientToServerSchemas, LiveServerToClientEventMap } from '@kapitan/shared';
import type { Namespace, Socket } from 'socket.io';
import type { z } from 'zod';
import type { AuthUser } from '../auth/auth-user';
import type { DomainEventName, DomainEvents } from '../common/domain-events';
import { DomainEventsService } from '../common/events.service';
import { APP_CONFIG, AppConfig } from '../config/config';

/**
 * The `/live` channel as features see it. A feature registers the dashboard
 * events it answers (`handle`) and its rows of the domain-event → room table
 * (`forward`); the one gateway (live.gateway.ts) parses every payload with
 * its schema from `@kapitan/shared` before a handler sees it, and makes a
 * socket leave every room of a project the moment its user may no longer
 * watch that project.
 */

export type LiveEvent = keyof LiveClientToServerEventMap;
export type LivePayload<E extends LiveEvent> = z.output<(typeof liveClientToServerSchemas)[E]>;
export type LiveAck<E extends LiveEvent> = Parameters<Parameters<LiveClientToServerEventMap[E]>[1]>[0];

export interface LiveContext {
  readonly userId: string;
  /**
   * Joins a room of `projectId`'s and checks the membership again once it is
   * in: a member removed while the join was under way is out again before
   * anything reaches it. False when it is no longer a member.
   */
  join(room: string, projectId: string): Promise<boolean>;
  leave(room: string): Promise<void>;
  /** Is this socket in the room now? */
  inRoom(room: string): boolean;
}

export type LiveHandler<E extends LiveEvent> = (ctx: LiveContext, payload: LivePayload<E>) => Promise<LiveAck<E>>;

export interface LiveHandlerOptions {
  /** It reads a page of stored data: the gateway lets each socket have only a few of these in flight. */
  heavy?: boolean;
}

/** One emit to dashboards: which rooms, which event, its payload; typed by the server → dashboard map. */
export type LiveEmit = {
  [K in keyof LiveServerToClientEventMap]: { rooms: string[]; event: K; payload: Parameters<LiveServerToClientEventMap[K]>[0] };
}[keyof LiveServerToClientEventMap];

/** Rows of the domain-event → room table: for a domain event, what reaches which rooms. */
export type LiveForwardTable = { [E in DomainEventName]?: (e: DomainEvents[E]) => LiveEmit };

export interface LiveSocketData {
  user: AuthUser;
  /** Every room this socket joined for a project, with that project: what to leave when the membership ends. */
  watch: Record<string, string>;
}
export type LiveSocket = Socket<LiveClientToServerEventMap, LiveServerToClientEventMap, Record<string, never>, LiveSocketData>;
export type LiveNamespace = Namespace<LiveClientToServerEventMap, LiveServerToClientEventMap, Record<string, never>, LiveSocketData>;

@Injectable()
export class LiveChannel {
  private readonly handlers = new Map<LiveEvent, LiveHandler<LiveEvent>>();
  private readonly heavy = new Set<LiveEvent>();
  private ns: LiveNamespace | null = null;

  constructor(
    private readonly events: DomainEventsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  handle<E extends LiveEvent>(event: E, handler: LiveHandler<E>, options: LiveHandlerOptions = {}): void {
    if (this.handlers.has(event)) throw new Error(`live event ${event} already has a handler`);
    this.handlers.set(event, handler as unknown as LiveHandler<LiveEvent>);
    if (options.heavy) this.heavy.add(event);
  }

  forward(table: LiveForwardTable): void {
    for (const name of Object.keys(table) as DomainEventName[]) {
      const route = table[name] as (e: DomainEvents[DomainEventName]) => LiveEmit;
      this.events.on(name, (e) => this.send(route(e)));
    }
  }

  attach(ns: LiveNamespace): void {
    this.ns = ns;
  }

  /**
   * Sockets of this node in `room`. Enough for rooms a socket of this node
   * created for itself alone (a log follow); for rooms that span nodes, ask
   * the adapter (`fetchSockets`).
   */
  localRoomSize(room: string): number {
    return this.ns?.adapter.rooms.get(room)?.size ?? 0;
  }

  handlerFor(event: string): LiveHandler<LiveEvent> | undefined {
    return this.handlers.get(event as LiveEvent);
  }

  isHeavy(event: string): boolean {
    return this.heavy.has(event as LiveEvent);
  }

  private send(m: LiveEmit): void {
    if (!this.ns || !this.audience(m.rooms)) return;
    (this.ns.to(m.rooms).emit as (event: string, payload: unknown) => boolean)(m.event, m.payload);
  }

  /**
   * Might anyone listen in one of these rooms? socket.io encodes a broadcast
   * before it looks for receivers, so an unwatched run's output would be
   * serialised for nobody. One node (no Redis) knows all its rooms; with
   * Redis another node may hold the listeners, so it always sends.
   */
  private audience(rooms: string[]): boolean {
    if (this.config.redisUrl) return true;
    const local = this.ns!.adapter.rooms;
    return rooms.some((r) => (local.get(r)?.size ?? 0) > 0);
  }
}
