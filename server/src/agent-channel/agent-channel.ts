import { Injectable } from '@nestjs/common';
import type { AgentHello, AgentToServerEventMap, agentToServerSchemas, ServerToAgentEventMap } from '@kapitan/shared';
import { Rooms } from '@kapitan/shared';
import type { Namespace, Socket } from 'socket.io';
import type { AdmissionTicket } from './admission';
import type { z } from 'zod';
import type { TokenBucket } from './rate-limiter';
import type { MachineProfile } from '../machines/machine.mapper';

/**
 * The `/agent` channel as features see it. A feature registers, in its
 * `onModuleInit`, the agent events it owns (`handle`), how to tell which of
 * its resources a machine owns (`ownership`) and what it does when an agent
 * says hello (`onHello`); it reaches agents through `toMachine`. The one
 * gateway (agent.gateway.ts) applies, to every event, the socket's rate
 * limit, then the event's schema from `@kapitan/shared`, then the ownership
 * check, and only then calls the handler — so no feature can forget one.
 */

/**
 * Resources a machine can own. Containers are not among them: their rows are
 * keyed by the socket's machine, so a report can only ever write its own.
 */
export type OwnedKind = 'execution' | 'delivery' | 'container-operation';

/** Events the gateway itself handles (the machine's presence); features handle the rest. */
export type CoreAgentEvent = 'agent:hello' | 'agent:heartbeat';
export type FeatureAgentEvent = Exclude<keyof AgentToServerEventMap, CoreAgentEvent>;

export type AgentPayload<E extends keyof AgentToServerEventMap> = z.output<(typeof agentToServerSchemas)[E]>;
export type AgentAck<E extends keyof AgentToServerEventMap> = Parameters<Parameters<AgentToServerEventMap[E]>[1]>[0];
type ServerToAgentPayload<K extends keyof ServerToAgentEventMap> = Parameters<ServerToAgentEventMap[K]>[0];

/** What a handler knows of the socket that sent the event: the identity bound at the handshake, never a payload's claim. */
export interface AgentContext {
  readonly machineId: string;
  readonly projectId: string;
  emit<K extends keyof ServerToAgentEventMap>(event: K, payload: ServerToAgentPayload<K>): void;
  /** The resource's last report was handled: its ownership is no longer cached for this socket. */
  release(kind: OwnedKind, id: string): void;
}

export interface AgentHandler<E extends FeatureAgentEvent> {
  /** The resource the payload reports on; the gateway refuses the event unless the socket's machine owns it. */
  owns?: { kind: OwnedKind; id: (p: AgentPayload<E>) => string };
  handle(ctx: AgentContext, payload: AgentPayload<E>): Promise<AgentAck<E>> | AgentAck<E>;
}

/** Which of `ids` the machine owns as stored on the server. */
export type OwnershipResolver = (machineId: string, ids: readonly string[]) => Promise<Set<string>>;

/** A hello, with `activeExecutionIds` reduced to the machine's own. Emits made here reach the agent after the hello's ack. */
export type HelloListener = (ctx: AgentContext, hello: AgentHello) => Promise<void>;

export interface AgentSocketData {
  machineId: string;
  projectId: string;
  /** From the handshake's read, for the hello's presence update; dropped after it. */
  profile: MachineProfile | null;
  /** Marked online by its hello: only then does its disconnect mark the machine offline. */
  online: boolean;
  bucket: TokenBucket;
  /** Resources known to be this machine's: the ownership check costs one read per resource, not per message. */
  owned: Map<OwnedKind, Set<string>>;
  /** Resources known not to be: a misbehaving agent does not cost a read per message. */
  foreign: Map<OwnedKind, Set<string>>;
  /** Its turn in the handshake, until the hello is answered. */
  admission?: AdmissionTicket;
}
export type AgentSocket = Socket<AgentToServerEventMap, ServerToAgentEventMap, Record<string, never>, AgentSocketData>;
export type AgentNamespace = Namespace<AgentToServerEventMap, ServerToAgentEventMap, Record<string, never>, AgentSocketData>;

/** Keeps the per-socket "known foreign" cache bounded. */
const FOREIGN_CACHE_MAX = 1000;

@Injectable()
export class AgentChannel {
  private readonly handlers = new Map<FeatureAgentEvent, AgentHandler<FeatureAgentEvent>>();
  private readonly resolvers = new Map<OwnedKind, OwnershipResolver>();
  private readonly helloListeners: HelloListener[] = [];
  private ns: AgentNamespace | null = null;

  // ---------------------------------------------------------------- registration (features, at init)

  handle<E extends FeatureAgentEvent>(event: E, handler: AgentHandler<E>): void {
    if (this.handlers.has(event)) throw new Error(`agent event ${event} already has a handler`);
    this.handlers.set(event, handler as unknown as AgentHandler<FeatureAgentEvent>);
  }

  ownership(kind: OwnedKind, resolve: OwnershipResolver): void {
    this.resolvers.set(kind, resolve);
  }

  onHello(listener: HelloListener): void {
    this.helloListeners.push(listener);
  }

  // ---------------------------------------------------------------- outbound (features, at any time)

  /** Emit to the machine's room: whichever node holds its socket delivers. */
  toMachine<K extends keyof ServerToAgentEventMap>(machineId: string, event: K, payload: ServerToAgentPayload<K>): void {
    this.ns?.to(Rooms.machine(machineId)).emit(event, ...([payload] as Parameters<ServerToAgentEventMap[K]>));
  }

  /** This node's socket of the machine learns that these are its own, so their first report costs no read. */
  grant(machineId: string, kind: OwnedKind, ids: readonly string[]): void {
    if (!this.ns) return;
    for (const socketId of this.ns.adapter.rooms.get(Rooms.machine(machineId)) ?? []) {
      const owned = this.ns.sockets.get(socketId)?.data.owned;
      if (!owned) continue;
      let set = owned.get(kind);
      if (!set) owned.set(kind, (set = new Set()));
      for (const id of ids) set.add(id);
    }
  }

  // ---------------------------------------------------------------- for the gateway

  attach(ns: AgentNamespace): void {
    this.ns = ns;
  }

  handlerFor(event: string): AgentHandler<FeatureAgentEvent> | undefined {
    return this.handlers.get(event as FeatureAgentEvent);
  }

  helloParticipants(): readonly HelloListener[] {
    return this.helloListeners;
  }

  /** Does the socket's machine own this resource? Cached per socket either way. */
  async owns(data: AgentSocketData, kind: OwnedKind, id: string): Promise<boolean> {
    if (data.owned.get(kind)?.has(id)) return true;
    let foreign = data.foreign.get(kind);
    if (foreign?.has(id)) return false;
    if ((await this.ownedAmong(data, kind, [id])).has(id)) return true;
    if (!foreign) data.foreign.set(kind, (foreign = new Set()));
    if (foreign.size >= FOREIGN_CACHE_MAX) foreign.clear();
    foreign.add(id);
    return false;
  }

  /** Which of `ids` the socket's machine owns, as stored; the owned ones are cached on the socket. */
  async ownedAmong(data: AgentSocketData, kind: OwnedKind, ids: readonly string[]): Promise<Set<string>> {
    const resolve = this.resolvers.get(kind);
    if (!resolve || !ids.length) return new Set();
    const mine = await resolve(data.machineId, ids);
    let set = data.owned.get(kind);
    if (!set) data.owned.set(kind, (set = new Set()));
    for (const id of mine) set.add(id);
    return mine;
  }
}
