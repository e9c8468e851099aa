/** Helpers for the schedules specs: a project with a machine, and a firing pass at a chosen time on one node. */
import type { MachineFacts } from '@kapitan/shared';
import { SchedulerService } from '../common/scheduler.service';
import { ScheduleClock } from '../schedules/schedule-clock';
import { SCHEDULES_JOB } from '../schedules/schedules.service';
import { bearer, TestApp } from './test-app';

export const FACTS: MachineFacts = {
  hostname: 'spec-host',
  os: 'Debian',
  platform: 'linux',
  kernel: '6.1',
  arch: 'x64',
  cpus: 2,
  memoryBytes: 1024,
  agentVersion: 'spec',
  dockerAvailable: false,
};

/** Moves this node's clock to `at` and runs one firing pass (after any in progress). */
export async function tickAt(t: TestApp, at: Date): Promise<void> {
  t.app.get(ScheduleClock).offsetMs = at.getTime() - Date.now();
  await t.app.get(SchedulerService).runNow(SCHEDULES_JOB);
}

/** A project with one enrolled (offline) machine; its executions queue. */
export async function projectWithMachine(t: TestApp, token: string): Promise<{ projectId: string; machineId: string }> {
  const projectId = (await t.http.post('/api/projects').set(bearer(token)).send({ name: 'p' }).expect(201)).body.id;
  const enrol = (await t.http.post(`/api/projects/${projectId}/enrolment-tokens`).set(bearer(token)).send({}).expect(201)).body;
  const machineId = (await t.http.post('/api/agent/enrol').send({ token: enrol.token, facts: FACTS }).expect(201)).body.machineId;
  return { projectId, machineId };
}

