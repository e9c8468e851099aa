/**
 * Three server nodes on one MySQL database and one Redis, behind a real
 * HAProxy (harness balancer.ts: WebSockets, a health check on /api/health/live,
 * redispatch of a failed connection). Real agents, a real dashboard in
 * Chromium and a REST caller reach the cluster only through the balancer.
 *
 * 1. A node dies (SIGKILL) while output flows through it: the agents redial
 *    through HAProxy to the others, the stored log is complete and not
 *    doubled, every node reads the machines online within the heartbeat
 *    threshold, the dashboard that was on the dead node resumes its live log
 *    with no gap, and a REST caller that retries gets its answer.
 * 2. A rolling restart (SIGTERM to each node in turn, each back before the
 *    next) under flowing output: each node drains and exits 0 in time, its
 *    agents move at once (no backoff), and nothing is lost or doubled.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { isFinalStatus, PRESENCE } from '@kapitan/shared';
import {
  ApiClient,
  createTestDatabase,
  describeOrSkip,
  jwtSecret,
  launchBrowser,
  logIn,
  redisUrl,
  requireChromium,
  requireHaproxy,
  requireMysql,
  requireRedis,
  startAgent,
  startBalancer,
  startServer,
  waitFor,
  waitForMachineStatus,
  withConnection,
  type TestAgent,
  type TestBalancer,
  type TestBrowser,
  type TestDatabase,
  type TestServer,
} from '../harness';
import { setupProject, waitForFinal, type TestProject } from './fixtures';

const REDIS_URL = redisUrl();
const NAMES = ['a', 'b', 'c'] as const;
/** Presence must be right within this: three missed heartbeats. */
const PRESENCE_THRESHOLD_MS = 3 * PRESENCE.heartbeatIntervalMs;

/** `line 1` … `line n`, each once, in order: a log with nothing lost and nothing doubled. */
function lines(n: number): string {
  let s = '';
  for (let i = 1; i <= n; i++) s += `line ${i}\n`;
  return s;
}

/** The log viewer keeps the last 2,000 lines (web log-format.ts TextTail). */
const VIEWER_LINES = 2000;

/** What the dashboard's log viewer shows of `stored`, all of it when it is short: its last VIEWER_LINES lines. */
function viewerTail(stored: string): string {
  const all = stored.split('\n');
  return all.length - 1 <= VIEWER_LINES ? stored : all.slice(-(VIEWER_LINES + 1)).join('\n');
}

/** A script that writes numbered lines until `stopFile` exists (or `max` lines). */
function counter(stopFile: string, max: number, sleep = '0.05'): string {
  return `i=1; while [ ! -e ${stopFile} ] && [ $i -le ${max} ]; do echo "line $i"; i=$((i+1)); sleep ${sleep}; done`;
}

describeOrSkip(requireMysql(), requireRedis(REDIS_URL), requireHaproxy(), requireChromium())('three nodes behind HAProxy (MySQL + Redis)', () => {
  let db: TestDatabase;
  const nodes: TestServer[] = [];
  let lb: TestBalancer;
  let p: TestProject;
  let agents: TestAgent[] = [];
  let browser: TestBrowser;
  let tmp: string;

  /** The node that holds a machine's socket now (machines.node_id), as the database says. */
  const holder = async (machineId: string): Promise<string | null> =>
    withConnection(db.url, async (c) => {
      const [rows] = await c.query('SELECT nodeId FROM machines WHERE id = ?', [machineId]);
      return (rows as { nodeId: string | null }[])[0]?.nodeId ?? null;
    });

  /** Every machine online as every live node reads it. */
  const allOnlineEverywhere = async (alive: TestServer[], timeoutMs = PRESENCE_THRESHOLD_MS): Promise<void> => {
    for (const n of alive) {
      const api = new ApiClient(n.url, p.owner.accessToken);
      for (const a of agents) await waitForMachineStatus({ api, projectId: p.projectId, machineId: a.machineId, status: 'online', timeoutMs });
    }
  };

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kapitan-nodes-lb-'));
    db = await createTestDatabase();
    const env = { REDIS_URL, JWT_SECRET: jwtSecret(), KAPITAN_SECRETS_KEY: randomBytes(32).toString('base64'), KAPITAN_SHUTDOWN_TIMEOUT_SECONDS: '10' };
    for (const name of NAMES) nodes.push(await startServer({ database: db, env: { ...env, KAPITAN_NODE_ID: `node-${name}` }, name: `node-${name}` }));
    lb = await startBalancer(nodes.map((n, i) => ({ name: NAMES[i], port: n.port })));
    p = await setupProject(lb.url, 'nodes-lb');
    // Everything lands on node a first (b and c take no new connections), so killing a is known to hit them all.
    await lb.setState('b', 'drain');
    await lb.setState('c', 'drain');
    for (let i = 0; i < 3; i++) {
      agents.push(await startAgent({ serverUrl: lb.url, token: (await p.api.createEnrolmentToken(p.projectId)).token, name: `agent-${i}` }));
    }
    await allOnlineEverywhere(nodes, 60_000);
    browser = await launchBrowser({ baseURL: lb.url });
    await logIn(browser.page, p.owner);
  }, 240_000);
  afterAll(async () => {
    await browser?.close();
    for (const a of agents) await a.dispose();
    await lb?.dispose();
    for (const n of nodes) await n.dispose();
    await db?.drop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('node a is SIGKILLed mid-run: agents, the dashboard and a retrying REST caller carry on through HAProxy on b and c', async () => {
    const [a, b, c] = nodes;
    for (const m of agents) expect(await holder(m.machineId)).toBe('node-a');
    const stop = path.join(tmp, 'stop-kill');
    const ids: string[] = [];
    for (const m of agents) {
      const { executions } = await p.api.createExecution(p.projectId, { script: counter(stop, 400), targets: { machineIds: [m.machineId] } });
      ids.push(executions[0].id);
    }
    const { page } = browser;
    await page.goto(`/executions/${ids[0]}`);
    const log = page.getByTestId('log-text');
    await log.filter({ hasText: /line 20\b/ }).waitFor({ timeout: 30_000 });
    await lb.setState('b', 'ready');
    await lb.setState('c', 'ready');

    // How far each run had got when node a died: its log must go on past that, complete.
    const atKill = await Promise.all(ids.map(async (id) => (await p.api.getExecutionLogText(id)).split('\n').length - 1));
    const killedAt = Date.now();
    await a.kill();
    // A REST caller that retries (a refused or reset connection, a 5xx) gets its answer through the balancer.
    const answer = await waitFor(
      async () => {
        const res = await p.api.request<{ id: string }>('GET', `/api/executions/${ids[1]}`, { timeoutMs: 5_000 }).catch(() => null);
        return res && res.status === 200 ? res.body : null;
      },
      { timeoutMs: 30_000, intervalMs: 200, message: 'the REST caller to get its answer after node a died' },
    );
    expect(answer.id).toBe(ids[1]);
    await lb.waitFor('a', 'DOWN');
    // Presence: every machine held by a survivor (its row no longer names the dead node) and read online by every
    // live node, within the heartbeat threshold of the kill.
    for (const m of agents) {
      await waitFor(async () => ['node-b', 'node-c'].includes((await holder(m.machineId)) ?? ''), {
        timeoutMs: PRESENCE_THRESHOLD_MS,
        intervalMs: 200,
        message: `machine ${m.machineId} held by node b or c`,
      });
    }
    await allOnlineEverywhere([b, c], PRESENCE_THRESHOLD_MS);
    expect(Date.now() - killedAt).toBeLessThan(PRESENCE_THRESHOLD_MS + 30_000);
    // Output kept flowing on the survivors: let it run a while more, then end the runs.
    await log.filter({ hasText: /line 120\b/ }).waitFor({ timeout: 60_000 });
    fs.writeFileSync(stop, '');
    for (const [i, id] of ids.entries()) {
      const e = await waitForFinal(p, id, 90_000);
      expect(e.status).toBe('succeeded');
      const text = await p.api.getExecutionLogText(id);
      const last = Number(/line (\d+)\n$/.exec(text)?.[1]);
      expect(last).toBeGreaterThan(atKill[i]);
      expect(text).toBe(lines(last)); // every line once, in order: nothing lost, nothing doubled
    }
    // The dashboard that was on node a reconnected through HAProxy and shows the whole log, no gap, no repeat.
    const stored = await p.api.getExecutionLogText(ids[0]);
    await waitFor(async () => (await log.textContent()) === viewerTail(stored), { timeoutMs: 30_000, message: 'the dashboard to show the stored log exactly' });
    await page.locator('[data-testid=execution-status]').filter({ hasText: /succeeded/i }).waitFor({ timeout: 30_000 });

    await a.restart();
    await lb.waitFor('a', 'UP');
  }, 300_000);

  test('rolling restart under flowing output: each node drains on SIGTERM and exits 0 in time; nothing lost or doubled', async () => {
    // Independent of how the test before ended: every node up and taking connections.
    for (const n of nodes) if (!n.managed.running) await n.restart();
    for (const name of NAMES) await lb.setState(name, 'ready');
    for (const name of NAMES) await lb.waitFor(name, 'UP');
    const stop = path.join(tmp, 'stop-roll');
    const ids: string[] = [];
    for (const m of agents) {
      const { executions } = await p.api.createExecution(p.projectId, { script: counter(stop, 5000, '0.1'), targets: { machineIds: [m.machineId] } });
      ids.push(executions[0].id);
    }
    const { page } = browser;
    await page.goto(`/executions/${ids[0]}`);
    const log = page.getByTestId('log-text');
    await log.filter({ hasText: /line 10\b/ }).waitFor({ timeout: 30_000 });
    const marks = agents.map((m) => m.logs().split('reconnecting at once').length);

    for (const [i, n] of nodes.entries()) {
      const before = await p.api.getExecutionLogText(ids[0]);
      const started = Date.now();
      const exit = await n.stop('SIGTERM');
      // Drained and stopped on its own: exit 0, within KAPITAN_SHUTDOWN_TIMEOUT_SECONDS (the harness would SIGKILL at 10 s).
      expect(exit).toEqual({ code: 0, signal: null });
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(n.logs()).toMatch(/node drained/);
      await lb.waitFor(NAMES[i], 'DOWN');
      await allOnlineEverywhere(nodes.filter((o) => o !== n));
      // Output still flows (through the other nodes) while this one is down.
      await waitFor(async () => (await p.api.getExecutionLogText(ids[0])).length > before.length + 50, { timeoutMs: 30_000, message: 'output to flow while a node is down' });
      await n.restart();
      await lb.waitFor(NAMES[i], 'UP');
    }
    // Every agent that was on a stopping node was told and redialled at once (no backoff after a drain).
    for (const [i, m] of agents.entries()) {
      expect(m.logs().split('reconnecting at once').length).toBeGreaterThan(marks[i]);
      expect(m.logs()).not.toMatch(/the server revoked/);
    }
    fs.writeFileSync(stop, '');
    for (const id of ids) {
      const e = await waitForFinal(p, id, 90_000);
      expect(isFinalStatus(e.status) && e.status).toBe('succeeded');
      const text = await p.api.getExecutionLogText(id);
      const last = Number(/line (\d+)\n$/.exec(text)?.[1]);
      expect(last).toBeGreaterThan(10);
      expect(text).toBe(lines(last));
    }
    const stored = await p.api.getExecutionLogText(ids[0]);
    // Exactly the stored log's tail (the viewer keeps its last lines): nothing missing in it, nothing twice.
    await waitFor(async () => (await log.textContent()) === viewerTail(stored), { timeoutMs: 30_000, message: 'the dashboard to show the stored log exactly after the roll' });
  }, 400_000);
});
