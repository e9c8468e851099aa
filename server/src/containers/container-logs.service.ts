import { Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { Rooms, ServerToAgentEvents } from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import { AgentChannel } from '../agent-channel/agent-channel';
import { LiveChannel } from '../live/live-channel';

/** How long a follow lives on the agent without a renewal: bounds what a server node that died with its watchers leaves running. */
export const LOG_LEASE_MS = 30_000;
/** How often this node looks whether its follows are still watched (and renews those that are). */
export const LOG_CHECK_MS = 2_000;

interface Follow {
  machineId: string;
  containerId: string;
  room: string;
  renewedAt: number;
}

/**
 * Container log follows started by this node's dashboard sockets. Each
 * subscription is its own stream with its own room (`container-logs:<machine>:<stream>`),
 * joined by the one socket that asked for it, so whether anyone still
 * watches is the room's size on this node — the node holding that socket.
 * When it is empty (the viewer left, unsubscribed, disconnected or lost the
 * membership) the agent is told to stop; while it is not, the lease is
 * renewed. If this node dies, nobody renews and the agent stops by itself
 * within LOG_LEASE_MS. The agent may sit on any node: every push goes to the
 * machine's room.
 */
@Injectable()
export class ContainerLogsService implements OnModuleInit, OnModuleDestroy {
  private readonly follows = new Map<string, Follow>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly agents: AgentChannel,
    private readonly live: LiveChannel,
  ) {}

  onModuleInit(): void {
    this.timer = setInterval(() => this.check(), LOG_CHECK_MS);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    if (this.timer) clearInterval(this.timer);
    for (const [streamId, f] of this.follows) this.agents.toMachine(f.machineId, ServerToAgentEvents.containerLogsStop, { streamId });
    this.follows.clear();
  }

  /** A new stream (its room to join first), then `start` once the socket is in it. */
  open(machineId: string): { streamId: string; room: string } {
    const streamId = randomUUID();
    return { streamId, room: Rooms.containerLogs(machineId, streamId) };
  }

  start(streamId: string, machineId: string, containerId: string, tail: number): void {
    this.follows.set(streamId, { machineId, containerId, room: Rooms.containerLogs(machineId, streamId), renewedAt: Date.now() });
    this.agents.toMachine(machineId, ServerToAgentEvents.containerLogsFollow, { streamId, containerId, tail, leaseMs: LOG_LEASE_MS });
  }

  stop(streamId: string): void {
    const f = this.follows.get(streamId);
    if (!f) return;
    this.follows.delete(streamId);
    this.agents.toMachine(f.machineId, ServerToAgentEvents.containerLogsStop, { streamId });
  }

  roomOf(streamId: string): string | null {
    return this.follows.get(streamId)?.room ?? null;
  }

  /** Streams this node follows now (tests). */
  watched(): string[] {
    return [...this.follows.keys()];
  }

  /** Also called by tests to look at once instead of waiting for the timer. */
  check(): void {
    const now = Date.now();
    for (const [streamId, f] of [...this.follows]) {
      if (this.live.localRoomSize(f.room) === 0) {
        this.stop(streamId);
        continue;
      }
      if (now - f.renewedAt >= LOG_LEASE_MS / 3) {
        f.renewedAt = now;
        // tail 0: a renewal of a follow the agent no longer has (it restarted) starts at now, not again from the tail
        this.agents.toMachine(f.machineId, ServerToAgentEvents.containerLogsFollow, { streamId, containerId: f.containerId, tail: 0, leaseMs: LOG_LEASE_MS });
      }
    }
  }
}
