import { signal } from '@angular/core';
import {
  describeTransfer,
  FINAL_EXECUTION_STATUSES,
  isFinalDelivery,
  type CreateExecutionResponse,
  type Delivery,
  type DeliveryMachine,
  type ExecutionStatus,
  type ExecutionSummary,
} from '@kapitan/shared';
import type { ProjectLiveEvent } from '../core/live/live.service';

/** One machine's line in the progress list, for runs and deliveries alike. */
export interface ActionLine {
  machineId: string;
  status: string;
  /** 0–100 while bytes move; null when there is nothing to measure. */
  percent: number | null;
  reason: string | null;
  executionId: string | null;
  /** A distribution's image as the machine's engine loaded it. */
  imageId: string | null;
  /** What crossed the network, once the agent said: "moved 12.0 MiB of 210.0 MiB, 3 of 4 layers present". */
  moved: string | null;
}

const FINAL_RUN: readonly ExecutionStatus[] = FINAL_EXECUTION_STATUSES;
/** Machines' parts kept while a request is out: more than one project's fan-out reaches. */
export const MAX_EARLY_PARTS = 10_000;

/**
 * The lines of one run, deploy or distribution, kept current from the
 * project room. A fast agent can finish before the create request's answer
 * reaches the page, so while a request is out the room's run and delivery
 * events are kept (the latest per machine's part: each event is a whole
 * snapshot of it), then replayed over the answer's: every event the room
 * sends is newer than the state the answer was made from.
 */
export class ActionLines {
  private deliveryId: string | null = null;
  private readonly executions = new Set<string>();
  private early: Map<string, ProjectLiveEvent> | null = null;
  private readonly current = signal<readonly ActionLine[]>([]);
  /** The lines as the page shows them. */
  readonly lines = this.current.asReadonly();

  /** What to fetch again after the room was rejoined, since its events may have been missed meanwhile. */
  followed(): { deliveryId: string | null; executionIds: string[] } {
    return { deliveryId: this.deliveryId, executionIds: [...this.executions] };
  }

  /** A delivery fetched again: each machine's part as if the room had said it. */
  deliveryFetched(d: Delivery): void {
    for (const m of d.machines) this.event({ type: 'delivery', kind: d.kind, machine: m });
  }

  /** A create request went out: keep what the room says until it answers. */
  requested(): void {
    this.early = new Map();
  }

  /** The request failed: nothing to follow. */
  refused(): void {
    this.early = null;
  }

  deliveryCreated(d: Delivery): void {
    this.deliveryId = d.id;
    this.answered(d.machines.map(fromDelivery));
  }

  runCreated(r: CreateExecutionResponse): void {
    for (const x of r.executions) this.executions.add(x.id);
    this.answered(r.executions.map((x) => fromExecution({ ...x, reason: null })));
  }

  event(e: ProjectLiveEvent): void {
    if (this.early) this.keepEarly(e);
    if (e.type === 'delivery' && e.machine.deliveryId === this.deliveryId) this.upsert(fromDelivery(e.machine));
    if (e.type === 'execution' && this.executions.has(e.execution.id)) this.upsert(fromExecution(e.execution));
  }

  private answered(lines: ActionLine[]): void {
    this.current.set(lines);
    const early = this.early;
    this.early = null;
    for (const e of early?.values() ?? []) this.event(e);
  }

  private keepEarly(e: ProjectLiveEvent): void {
    const key = e.type === 'delivery' ? `d:${e.machine.deliveryId}:${e.machine.machineId}` : e.type === 'execution' ? `x:${e.execution.id}` : null;
    if (!key || !this.early || (this.early.size >= MAX_EARLY_PARTS && !this.early.has(key))) return;
    this.early.delete(key); // re-inserted last, so the replay keeps arrival order
    this.early.set(key, e);
  }

  private upsert(line: ActionLine): void {
    this.current.update((list) => {
      const i = list.findIndex((l) => l.machineId === line.machineId);
      const next = list.slice();
      if (i < 0) next.push(line);
      else next[i] = line;
      return next;
    });
  }
}

function fromExecution(x: Pick<ExecutionSummary, 'id' | 'machineId' | 'status' | 'reason'>): ActionLine {
  return { machineId: x.machineId, status: x.status, percent: null, reason: FINAL_RUN.includes(x.status) ? x.reason : null, executionId: x.id, imageId: null, moved: null };
}

function fromDelivery(m: DeliveryMachine): ActionLine {
  const moving = m.status === 'downloading' || m.status === 'writing' || m.status === 'loading' || m.status === 'succeeded';
  return {
    machineId: m.machineId,
    status: m.status,
    percent: moving ? (m.totalBytes > 0 ? Math.floor((m.receivedBytes / m.totalBytes) * 100) : 100) : null,
    reason: isFinalDelivery(m.status) ? m.reason : null,
    executionId: null,
    imageId: m.imageId,
    moved: describeTransfer(m),
  };
}
