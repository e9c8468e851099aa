/**
 * The metrics watch across two server nodes (MySQL + Redis): the agent on
 * node A, the dashboard watching on node B. B leases the fast rate to the
 * agent through A, A's samples reach the watcher on B live at that rate,
 * and when the watcher on B leaves (its node stops renewing) the agent falls
 * back to its idle interval by itself.
 */
import { randomBytes } from 'node:crypto';
import { LiveClientEvents, LiveServerEvents, type LiveHostMetricsEvent, type LiveMetricsSampleEvent } from '@kapitan/shared';
import {
  connectLive,
  createTestDatabase,
  describeOrSkip,
  emitWithAck,
  jwtSecret,
  redisUrl,
  requireMysql,
  requireRedis,
  startServer,
  waitFor,
  type TestAgent,
  type TestDatabase,
  type TestServer,
} from '../harness';
import { setupProject, startOnlineAgent } from './fixtures';

const IDLE_MS = 2000;
const gaps = (times: number[]): number[] => times.slice(1).map((t, i) => t - times[i]!);
const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

describeOrSkip(requireMysql(), requireRedis())('metrics watch on two server nodes (MySQL + Redis, real agent)', () => {
  let db: TestDatabase;
  let a: TestServer;
  let b: TestServer;
  let agent: TestAgent;

  beforeAll(async () => {
    db = await createTestDatabase();
    const env = {
      REDIS_URL: redisUrl(),
      JWT_SECRET: jwtSecret(),
      KAPITAN_SECRETS_KEY: randomBytes(32).toString('base64'),
      KAPITAN_METRICS_WATCH_INTERVAL_MS: '300',
      KAPITAN_METRICS_WATCH_LEASE_MS: '3000',
      KAPITAN_METRICS_RAW_INTERVAL_MS: '100',
    };
    a = await startServer({ database: db, env: { ...env, KAPITAN_NODE_ID: 'node-a' }, name: 'node-a' });
    b = await startServer({ database: db, env: { ...env, KAPITAN_NODE_ID: 'node-b' }, name: 'node-b' });
  }, 120_000);
  afterAll(async () => {
    await agent?.dispose();
    await a?.dispose();
    await b?.dispose();
    await db?.drop();
  }, 60_000);

  test('a watcher on B makes the agent on A sample fast, its samples reach B live, and leaving on B lets the lease run out', async () => {
    const p = await setupProject(b.url, 'nodes-metrics');
    agent = await startOnlineAgent(a.url, p, { env: { KAPITAN_AGENT_METRICS_INTERVAL_MS: String(IDLE_MS) } });
    // stored samples, as B's project room hears of them (written on A)
    const project = await connectLive(b.url, p.owner.accessToken);
    const stored: number[] = [];
    project.on(LiveServerEvents.hostMetrics, (e: LiveHostMetricsEvent) => void (e.machineId === agent.machineId && stored.push(Date.parse(e.at))));
    expect(((await emitWithAck(project, LiveClientEvents.subscribeProject, { projectId: p.projectId })) as { ok: boolean }).ok).toBe(true);
    await waitFor(() => stored.length >= 4, { timeoutMs: 30_000, message: 'idle samples' });
    expect(median(gaps(stored.slice(-4)))).toBeGreaterThan(IDLE_MS * 0.7);

    const watcher = await connectLive(b.url, p.owner.accessToken);
    const samples: number[] = [];
    watcher.on(LiveServerEvents.metricsSample, (e: LiveMetricsSampleEvent) => void (e.machineId === agent.machineId && samples.push(Date.parse(e.host.at))));
    expect(((await emitWithAck(watcher, LiveClientEvents.subscribeMachineMetrics, { machineId: agent.machineId })) as { ok: boolean }).ok).toBe(true);
    await waitFor(() => samples.length >= 12, { timeoutMs: 60_000, message: 'twelve watched samples on B' });
    expect(median(gaps(samples.slice(1, 12)))).toBeLessThan(IDLE_MS / 2);

    watcher.disconnect();
    await waitFor(
      () => {
        const g = gaps(stored.slice(-4));
        return g.length === 3 && median(g) > IDLE_MS * 0.7 ? true : null;
      },
      { timeoutMs: 60_000, message: 'idle again after the watcher on B left' },
    );
    project.disconnect();
  }, 180_000);
});
