/**
 * A schedule through a real server process and a real agent: every 2 s it
 * fires on time, its executions run on the agent and succeed, and its
 * history links each occurrence to them; paused, nothing more fires.
 */
import type { Occurrence } from '@kapitan/shared';
import { describeOrSkip, requireMysql, startServer, waitFor, type TestAgent, type TestServer } from '../harness';
import { setupProject, startOnlineAgent, type TestProject } from './fixtures';

describeOrSkip(requireMysql())('schedules through a real agent (MySQL)', () => {
  let server: TestServer;
  let p: TestProject;
  let agent: TestAgent;

  beforeAll(async () => {
    server = await startServer({ database: 'mysql' });
    p = await setupProject(server.url, 'schedules');
    agent = await startOnlineAgent(server.url, p);
  });
  afterAll(async () => {
    await agent?.dispose();
    await server?.dispose();
  });

  test('every 2 s: fires within a second of each slot, runs on the agent, history links to the executions; paused, it stops', async () => {
    const s = await p.api.createSchedule(p.projectId, {
      name: 'heartbeat',
      cron: '*/2 * * * * *',
      script: '#!/bin/sh\necho "scheduled run"\n',
      targets: { machineIds: [agent.machineId] },
      overlapPolicy: 'allow',
    });
    let done: Occurrence[] = [];
    await waitFor(
      async () => {
        done = (await p.api.listOccurrences(s.id)).filter((o) => o.status === 'succeeded');
        return done.length >= 3;
      },
      { timeoutMs: 30_000, intervalMs: 200, message: 'three succeeded occurrences' },
    );
    for (const o of done) {
      expect(new Date(o.firedAt as string).getTime() - new Date(o.fireAt).getTime()).toBeLessThan(1000);
      expect(o.executions).toEqual([{ id: expect.any(String), machineId: agent.machineId, status: 'succeeded' }]);
      const e = await p.api.getExecution(o.executions[0].id);
      expect(e.runId).toBe(o.runId);
      expect(await p.api.getExecutionLogText(e.id)).toContain('scheduled run');
    }
    expect((await p.api.getSchedule(s.id)).lastOccurrence).not.toBeNull();

    await p.api.pauseSchedule(s.id);
    const settled = await p.api.listOccurrences(s.id);
    // After the pause, at most one more record (the skip noting it), and no more runs.
    const later = Date.now() + 5_000;
    await waitFor(async () => Date.now() >= later, { timeoutMs: 10_000, intervalMs: 250, message: 'five seconds of pause' });
    const after = await p.api.listOccurrences(s.id);
    const newer = after.filter((o) => !settled.some((x) => x.id === o.id));
    expect(newer.every((o) => o.status === 'skipped' && o.reason === 'paused')).toBe(true);
    expect(newer.length).toBeLessThanOrEqual(1);
  });
});
