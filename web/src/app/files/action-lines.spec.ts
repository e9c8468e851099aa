import type { Delivery, DeliveryMachine, ExecutionSummary } from '@kapitan/shared';
import type { ProjectLiveEvent } from '../core/live/live.service';
import { ActionLines, MAX_EARLY_PARTS } from './action-lines';

const machine = (status: DeliveryMachine['status'], receivedBytes = 0, deliveryId = 'd1'): DeliveryMachine =>
  ({ deliveryId, machineId: 'm1', status, reason: null, receivedBytes, totalBytes: 100, imageId: null }) as unknown as DeliveryMachine;
const delivery = (m: DeliveryMachine): Delivery => ({ id: m.deliveryId, machines: [m] }) as unknown as Delivery;
const deliveryEvent = (m: DeliveryMachine): ProjectLiveEvent => ({ type: 'delivery', kind: 'deploy', machine: m });
const runEvent = (status: ExecutionSummary['status'], id = 'x1'): ProjectLiveEvent =>
  ({ type: 'execution', execution: { id, machineId: 'm1', status, reason: null } as ExecutionSummary });
const statuses = (t: ActionLines) => t.lines().map((l) => `${l.machineId}:${l.status}`);

describe('ActionLines', () => {
  it('follows a delivery from its answer on', () => {
    const t = new ActionLines();
    t.requested();
    t.deliveryCreated(delivery(machine('queued')));
    t.event(deliveryEvent(machine('downloading', 50)));
    expect(t.lines()[0].percent).toBe(50);
    t.event(deliveryEvent(machine('succeeded', 100)));
    expect(statuses(t)).toEqual(['m1:succeeded']);
  });

  it('a delivery that ends before the request answers still ends in the list', () => {
    const t = new ActionLines();
    t.requested();
    t.event(deliveryEvent(machine('downloading', 50)));
    expect(t.lines()).toEqual([]);
    t.event(deliveryEvent(machine('succeeded', 100)));
    t.deliveryCreated(delivery(machine('queued')));
    expect(statuses(t)).toEqual(['m1:succeeded']);
    expect(t.lines()[0].percent).toBe(100);
  });

  it('a run that ends before the request answers still ends in the list', () => {
    const t = new ActionLines();
    t.requested();
    t.event(runEvent('running'));
    t.event(runEvent('succeeded'));
    t.runCreated({ executions: [{ id: 'x1', machineId: 'm1', status: 'queued' }] } as never);
    expect(statuses(t)).toEqual(['m1:succeeded']);
  });

  it('ignores other deliveries and runs, before and after the answer', () => {
    const t = new ActionLines();
    t.requested();
    t.event(deliveryEvent(machine('failed', 0, 'other')));
    t.event(runEvent('failed', 'x-other'));
    t.deliveryCreated(delivery(machine('queued')));
    t.event(deliveryEvent(machine('failed', 0, 'other')));
    expect(statuses(t)).toEqual(['m1:queued']);
  });

  it('keeps the latest state of each part, nothing once the request failed, and at most the bound while it is out', () => {
    const latest = new ActionLines();
    latest.requested();
    latest.event(deliveryEvent(machine('succeeded', 100)));
    latest.event(deliveryEvent(machine('downloading', 70)));
    latest.deliveryCreated(delivery(machine('queued')));
    expect(latest.lines()[0].percent).toBe(70);

    const t = new ActionLines();
    t.requested();
    t.event(deliveryEvent(machine('succeeded', 100)));
    t.refused();
    t.deliveryCreated(delivery(machine('queued')));
    expect(statuses(t)).toEqual(['m1:queued']);

    const bounded = new ActionLines();
    bounded.requested();
    for (let i = 0; i < MAX_EARLY_PARTS; i++) bounded.event(deliveryEvent({ ...machine('succeeded', 100, 'other'), machineId: `m${i + 2}` }));
    // Past the bound a new part is not kept, while a kept part still takes its latest state.
    bounded.event(deliveryEvent(machine('succeeded', 100)));
    bounded.event(deliveryEvent({ ...machine('failed', 0, 'other'), machineId: 'm2' }));
    bounded.deliveryCreated(delivery(machine('queued')));
    expect(statuses(bounded)).toEqual(['m1:queued']);
  });
});

describe('ActionLines after the room was rejoined', () => {
  it('says what it follows, and takes a delivery fetched again over the lines', () => {
    const t = new ActionLines();
    t.requested();
    t.deliveryCreated(delivery(machine('queued')));
    expect(t.followed()).toEqual({ deliveryId: 'd1', executionIds: [] });
    t.deliveryFetched({ ...delivery(machine('succeeded', 100)), kind: 'deploy' } as Delivery);
    expect(statuses(t)).toEqual(['m1:succeeded']);
  });
});
