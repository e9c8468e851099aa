/**
 * Metrics end to end: a real server, a real agent process and the real
 * Docker engine. Host samples arrive and are stored; a running container's
 * CPU and memory arrive; the agent samples at its idle interval while nobody
 * watches, fast while a dashboard watches the machine, and falls back once
 * the watcher leaves and the lease runs out. The intervals are shrunk (idle
 * 2 s, watched 300 ms) and the raw interval is 100 ms so every sample is
 * stored; rates are judged by the median gap between consecutive events
 * (300 ms against 2 s leaves wide margins; a single gap may be shortened by a
 * sample that waited less for its container readings than the one before).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  LiveClientEvents,
  LiveServerEvents,
  type ContainerMetricsResponse,
  type LiveHostMetricsEvent,
  type LiveMetricsSampleEvent,
  type MachineDockerStatus,
  type MachineMetricsResponse,
} from '@kapitan/shared';
import { buildBusyboxImage, removeImages } from '@kapitan/agent/testing';
import { connectLive, describeOrSkip, emitWithAck, requireDockerSync, startServer, waitFor, type LiveSocket, type TestAgent, type TestServer } from '../harness';
import { setupProject, startOnlineAgent, type TestProject } from './fixtures';

const run = promisify(execFile);
const RUN = `e2e-metrics-${process.pid}-${Date.now()}`;
const docker = async (...args: string[]): Promise<string> => (await run('docker', args, { timeout: 60_000 })).stdout.trim();
const IDLE_MS = 2000;
const WATCHED_MS = 300;

const gaps = (times: number[]): number[] => times.slice(1).map((t, i) => t - times[i]!);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describeOrSkip(requireDockerSync())('metrics (real agent, real Docker)', () => {
  let server: TestServer;
  let p: TestProject;
  let agent: TestAgent;
  let live: LiveSocket;
  let image = '';
  /** Stored host samples of the agent's machine, as the project room hears of them (server time). */
  const stored: number[] = [];

  beforeAll(async () => {
    image = (await buildBusyboxImage(`kapitan-test/e2e-metrics:${RUN}`, RUN)).tag;
    server = await startServer({
      database: 'sqlite',
      env: { KAPITAN_METRICS_WATCH_INTERVAL_MS: String(WATCHED_MS), KAPITAN_METRICS_WATCH_LEASE_MS: '3000', KAPITAN_METRICS_RAW_INTERVAL_MS: '100' },
    });
    p = await setupProject(server.url, 'metrics');
    agent = await startOnlineAgent(server.url, p, { env: { KAPITAN_AGENT_METRICS_INTERVAL_MS: String(IDLE_MS) } });
    live = await connectLive(server.url, p.owner.accessToken);
    live.on(LiveServerEvents.hostMetrics, (e: LiveHostMetricsEvent) => {
      if (e.machineId === agent.machineId) stored.push(Date.parse(e.at));
    });
    expect(((await emitWithAck(live, LiveClientEvents.subscribeProject, { projectId: p.projectId })) as { ok: boolean }).ok).toBe(true);
    await waitFor(async () => ((await p.api.request<MachineDockerStatus>('GET', `/api/machines/${agent.machineId}/docker`)).body.available ? true : null), {
      timeoutMs: 20_000,
      message: 'docker available',
    });
  }, 120_000);

  afterAll(async () => {
    live?.disconnect();
    await agent?.dispose();
    await server?.dispose();
    const ids = (await docker('ps', '-aq', '--filter', `label=kapitan.test=${RUN}`)).split('\n').filter(Boolean);
    if (ids.length) await docker('rm', '-f', ...ids);
    await removeImages(image);
  }, 60_000);

  test('host samples arrive, are stored, and read back with every reading', async () => {
    await waitFor(() => stored.length >= 2, { timeoutMs: 30_000, message: 'two stored samples' });
    const from = new Date(Date.now() - 5 * 60_000).toISOString();
    const r = await p.api.request<MachineMetricsResponse>('GET', `/api/machines/${agent.machineId}/metrics?from=${from}`);
    expect(r.status).toBe(200);
    expect(r.body.resolution).toBe('raw');
    const last = r.body.points.at(-1)!;
    expect(last.memoryTotalBytes).toBeGreaterThan(0);
    expect(last.memoryUsedBytes).toBeLessThanOrEqual(last.memoryTotalBytes);
    expect(last.diskRootTotalBytes).toBeGreaterThan(0);
    expect(last.diskStateTotalBytes).toBeGreaterThan(0);
    expect(typeof last.cpuPercent).toBe('number'); // from the second sample on
    expect(last.load1).toBeGreaterThanOrEqual(0);
  }, 60_000);

  test("a running container's CPU and memory arrive and are stored", async () => {
    const id = await docker('run', '-d', '--label', `kapitan.test=${RUN}`, '-m', '64m', image, 'sh', '-c', 'while :; do :; done');
    const series = await waitFor(
      async () => {
        const from = new Date(Date.now() - 5 * 60_000).toISOString();
        const r = await p.api.request<ContainerMetricsResponse>('GET', `/api/machines/${agent.machineId}/metrics/containers?containerId=${id}&from=${from}&resolution=raw`);
        const points = r.body.series.find((s) => s.containerId === id)?.points ?? [];
        return points.some((x) => x.cpuPercent !== null && x.cpuPercent > 0) ? points : null;
      },
      { timeoutMs: 60_000, intervalMs: 500, message: 'CPU readings of the busy container' },
    );
    expect(series.at(-1)).toMatchObject({ memoryLimitBytes: 64 * 1024 * 1024 });
    expect(series.at(-1)!.memoryUsedBytes).toBeGreaterThan(0);
  }, 90_000);

  test('idle interval while nobody watches, the watched one while a dashboard watches, idle again after the lease', async () => {
    // idle: five consecutive stored samples, their gaps about the idle interval
    const from = stored.length;
    await waitFor(() => stored.length >= from + 5, { timeoutMs: 60_000, message: 'five idle samples' });
    expect(median(gaps(stored.slice(from, from + 5)))).toBeGreaterThan(IDLE_MS * 0.7);

    // watched: a second dashboard socket joins the machine's metrics; samples come at the watched rate
    const watcher = await connectLive(server.url, p.owner.accessToken);
    const samples: number[] = [];
    watcher.on(LiveServerEvents.metricsSample, (e: LiveMetricsSampleEvent) => {
      if (e.machineId === agent.machineId) samples.push(Date.parse(e.host.at));
    });
    expect(((await emitWithAck(watcher, LiveClientEvents.subscribeMachineMetrics, { machineId: agent.machineId })) as { ok: boolean }).ok).toBe(true);
    await waitFor(() => samples.length >= 12, { timeoutMs: 60_000, message: 'twelve watched samples' });
    // the first gap may straddle the switch; the rest are watched ones (300 ms nominal, 2 s idle)
    expect(median(gaps(samples.slice(1, 12)))).toBeLessThan(IDLE_MS / 2);

    // the watcher leaves: within the lease the agent is back to its idle interval
    watcher.disconnect();
    await waitFor(
      () => {
        const g = gaps(stored.slice(-4));
        return g.length === 3 && median(g) > IDLE_MS * 0.7 ? true : null;
      },
      { timeoutMs: 60_000, message: 'idle gaps again after the watcher left' },
    );
  }, 180_000);
});
