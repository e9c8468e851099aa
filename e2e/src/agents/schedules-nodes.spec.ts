/**
 * Schedules on three real server processes sharing one MySQL database,
 * their clocks skewed by −5 s, 0 and +5 s (KAPITAN_SCHEDULE_CLOCK_SKEW_MS):
 * every 2 s slot becomes exactly one occurrence with exactly one execution,
 * with no slot missed, and when one node is SIGKILLed at a slot boundary —
 * possibly mid-firing — the slots around its death still fire once each, and
 * none waits 10 s or more for another node to take it.
 *
 * The thousands of occurrences are in the server spec
 * (schedules-nodes.spec.ts, three app instances with fake clocks driven
 * tick by tick); here the processes, clocks and the kill are real.
 */
import type { Occurrence } from '@kapitan/shared';
import { createTestDatabase, describeOrSkip, jwtSecret, requireMysql, startServer, waitFor, type TestDatabase, type TestServer } from '../harness';
import { enrolRaw, setupProject, type TestProject } from './fixtures';

const SKEWS = [-5_000, 0, 5_000];
const SLOT_MS = 2_000;

describeOrSkip(requireMysql())('schedules on three server processes (MySQL, skewed clocks)', () => {
  let db: TestDatabase;
  const nodes: TestServer[] = [];
  let p: TestProject;
  let machineId: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    const JWT_SECRET = jwtSecret();
    for (const [i, skew] of SKEWS.entries()) {
      nodes.push(await startServer({ database: db, name: `sched-node-${i}`, env: { JWT_SECRET, KAPITAN_SCHEDULE_CLOCK_SKEW_MS: String(skew), LOG_LEVEL: 'warn' } }));
    }
    p = await setupProject(nodes[0].url, 'sched-nodes');
    // A machine that never connects: each occurrence's one execution simply waits queued.
    machineId = (await enrolRaw(nodes[0].url, p)).machineId;
  }, 120_000);
  afterAll(async () => {
    for (const n of nodes) await n.dispose();
    await db?.drop();
  });

  test('each slot once, none missed, through a SIGKILL of a node at a slot boundary', async () => {
    const s = await p.api.createSchedule(p.projectId, {
      name: 'three nodes',
      cron: '*/2 * * * * *',
      script: 'true',
      targets: { machineIds: [machineId] },
      overlapPolicy: 'allow',
    });
    const occurrences = async (): Promise<Occurrence[]> => (await p.api.listOccurrences(s.id)).sort((a, b) => Date.parse(a.fireAt) - Date.parse(b.fireAt));
    await waitFor(async () => (await occurrences()).length >= 6, { timeoutMs: 40_000, intervalMs: 250, message: 'six occurrences on three nodes' });

    // Kill the unskewed node just as a slot falls due for it, when it may be claiming or firing it.
    const nextSlot = Math.ceil((Date.now() + 500) / SLOT_MS) * SLOT_MS;
    await waitFor(async () => Date.now() >= nextSlot, { timeoutMs: 10_000, intervalMs: 5, message: 'the slot boundary' });
    await nodes[1].kill();
    const killedAt = Date.now();
    await waitFor(async () => (await occurrences()).filter((o) => Date.parse(o.fireAt) > killedAt + 6_000).length >= 3, {
      timeoutMs: 40_000,
      intervalMs: 250,
      message: 'three occurrences after the kill',
    });
    await p.api.pauseSchedule(s.id);

    const all = (await occurrences()).filter((o) => o.status !== 'skipped');
    const slots = all.map((o) => Date.parse(o.fireAt));
    // Exactly once: no slot twice, and every 2 s slot from the first to the last is there.
    expect(new Set(slots).size).toBe(slots.length);
    for (let i = 1; i < slots.length; i++) expect({ i, step: slots[i]! - slots[i - 1]! }).toEqual({ i, step: SLOT_MS });
    for (const o of all) {
      expect({ fireAt: o.fireAt, executions: o.executions.length }).toEqual({ fireAt: o.fireAt, executions: 1 });
      // Fired by some node, never left for 10 s (a dead claimer's lease is taken over).
      expect(o.firedAt).not.toBeNull();
      expect(Date.parse(o.firedAt!) - Date.parse(o.fireAt)).toBeLessThan(10_000);
    }
    const executions = await p.api.request<{ runId: string }[]>('GET', `/api/projects/${p.projectId}/executions?machineId=${machineId}&limit=500`);
    expect(executions.body.length).toBe(all.length);
    expect(new Set(executions.body.map((e) => e.runId)).size).toBe(all.length);
  }, 150_000);
});
