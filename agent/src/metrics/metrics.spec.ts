/**
 * Metrics on the agent: host readings from a /proc fixture (exact numbers)
 * and from the real host (valid by the shared schema), container readings
 * from the real engine's one-shot stats, and the sampler's two rates — the
 * idle one, and the watched one while a lease runs.
 */
import { execFile } from 'node:child_process';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { HostMetricsSchema, MetricsSampleSchema, type AgentToServerEventMap, type MetricsSample } from '@kapitan/shared';
import Dockerode from 'dockerode';
import { buildBusyboxImage, dockerUnavailableReason, removeImages } from '../docker-fixture';
import { tmpDir, waitFor } from '../test-support/wait';
import type { ServerLink } from '../containers/supervisor';
import { ContainerStatsReader } from './containers';
import { HostReader } from './host';
import { MetricsSampler } from './sampler';
import { configFromEnv } from '../config';

const run = promisify(execFile);
const isCI = /^(1|true|yes)$/i.test(process.env.CI ?? '');
const RUN = `metrics-${process.pid}-${Date.now()}`;

function writeProc(dir: string, cpu: number[], rx: number, tx: number): void {
  fs.mkdirSync(path.join(dir, 'net'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'stat'), `cpu  ${cpu.join(' ')} 0 0\ncpu0 ${cpu.join(' ')} 0 0\nintr 1\n`);
  fs.writeFileSync(
    path.join(dir, 'net', 'dev'),
    'Inter-|   Receive                                                |  Transmit\n' +
      ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n' +
      `    lo: 999999 10 0 0 0 0 0 0 999999 10 0 0 0 0 0 0\n` +
      `  eth0: ${rx} 10 0 0 0 0 0 0 ${tx} 10 0 0 0 0 0 0\n`,
  );
  fs.writeFileSync(path.join(dir, 'meminfo'), 'MemTotal:        8000 kB\nMemFree:         1000 kB\nMemAvailable:    6000 kB\n');
}

class RecordingLink extends EventEmitter implements ServerLink {
  ready = true;
  readonly samples: MetricsSample[] = [];
  async request(event: keyof AgentToServerEventMap, payload: unknown): Promise<unknown> {
    if (event === 'metrics:sample') this.samples.push(payload as MetricsSample);
    return { ok: true };
  }
}

describe('host readings', () => {
  const dir = tmpDir();
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('CPU and network are rates over the interval (null the first time); memory is total minus available; loopback is left out', async () => {
    const reader = new HostReader({ stateDir: dir, procDir: dir });
    // user nice system idle iowait irq softirq steal
    writeProc(dir, [100, 0, 100, 700, 100, 0, 0, 0], 1000, 500);
    const first = await reader.read(10_000);
    expect(first).toMatchObject({ cpuPercent: null, netRxBytesPerSec: null, netTxBytesPerSec: null, memoryTotalBytes: 8000 * 1024, memoryUsedBytes: 2000 * 1024 });
    // +100 busy, +300 idle/iowait: 25 %; +4000 rx and +2000 tx bytes over 2 s
    writeProc(dir, [150, 0, 150, 900, 200, 0, 0, 0], 5000, 2500);
    const second = await reader.read(12_000);
    expect(second.cpuPercent).toBeCloseTo(25);
    expect(second.netRxBytesPerSec).toBe(2000);
    expect(second.netTxBytesPerSec).toBe(1000);
    expect(second.diskStateTotalBytes).toBeGreaterThan(0);
    expect(second.diskStateUsedBytes).toBeLessThanOrEqual(second.diskStateTotalBytes);
    expect(HostMetricsSchema.safeParse(second).success).toBe(true);
    // a counter that went back (an interface gone): no rate rather than a negative one
    writeProc(dir, [150, 0, 150, 900, 200, 0, 0, 0], 10, 10);
    const third = await reader.read(14_000);
    expect(third.netRxBytesPerSec).toBeNull();
    expect(third.cpuPercent).toBeNull(); // no CPU time passed
  });

  test('the real host reads valid by the shared schema', async () => {
    const reader = new HostReader({ stateDir: dir });
    await reader.read();
    const r = await reader.read(Date.now() + 1000);
    expect(HostMetricsSchema.safeParse(r).success).toBe(true);
    expect(r.memoryTotalBytes).toBeGreaterThan(0);
    expect(r.diskRootTotalBytes).toBeGreaterThan(0);
  });
});

describe('the metrics interval setting', () => {
  test('defaults to 10 s, 0 turns metrics off, and a value out of bounds is refused naming the variable', () => {
    expect(configFromEnv({}).metricsIntervalMs).toBe(10_000);
    expect(configFromEnv({ KAPITAN_AGENT_METRICS_INTERVAL_MS: '0' }).metricsIntervalMs).toBe(0);
    expect(configFromEnv({ KAPITAN_AGENT_METRICS_INTERVAL_MS: '2500' }).metricsIntervalMs).toBe(2500);
    expect(() => configFromEnv({ KAPITAN_AGENT_METRICS_INTERVAL_MS: '50' })).toThrow(/KAPITAN_AGENT_METRICS_INTERVAL_MS/);
    expect(() => configFromEnv({ KAPITAN_AGENT_METRICS_INTERVAL_MS: 'often' })).toThrow(/KAPITAN_AGENT_METRICS_INTERVAL_MS/);
  });
});

describe('the sampler', () => {
  const dir = tmpDir();
  let sampler: MetricsSampler | null = null;
  afterEach(() => sampler?.stop());
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('samples at the idle interval, faster while a watch lease runs, and back when it runs out', async () => {
    const link = new RecordingLink();
    sampler = new MetricsSampler({ link, host: new HostReader({ stateDir: dir }), docker: () => null, idleIntervalMs: 60_000 });
    sampler.start();
    await waitFor(() => link.samples.length === 1, 'the first sample at start');
    expect(MetricsSampleSchema.safeParse(link.samples[0]).success).toBe(true);
    expect(sampler.intervalMs).toBe(60_000);
    // idle: the next one is a minute away; a watch brings them every 200 ms
    sampler.watch({ intervalMs: 200, leaseMs: 1500 });
    expect(sampler.intervalMs).toBe(200);
    await waitFor(() => link.samples.length >= 5, 'five samples while watched', 10_000);
    await waitFor(() => sampler!.intervalMs === 60_000, 'the lease to run out', 10_000);
  });
});

describe('container readings (real engine)', () => {
  let reason: string | null = null;
  let image = '';
  let id = '';

  beforeAll(async () => {
    reason = await dockerUnavailableReason();
    if (reason && isCI) throw new Error(`Docker unavailable under CI=true: ${reason}`);
    if (reason) return;
    image = (await buildBusyboxImage(`kapitan-test/metrics:${RUN}`, RUN)).tag;
    id = (await run('docker', ['run', '-d', '--label', `kapitan.test=${RUN}`, '-m', '64m', image, 'sh', '-c', 'while :; do :; done'], { timeout: 60_000 })).stdout.trim();
  }, 120_000);
  afterAll(async () => {
    if (reason) return;
    if (id) await run('docker', ['rm', '-f', id]).catch(() => undefined);
    await removeImages(image);
  }, 60_000);

  test('one-shot stats of a running container: memory at once, CPU from the second reading on', async () => {
    if (reason) return;
    const docker = new Dockerode({ socketPath: '/var/run/docker.sock' });
    const reader = new ContainerStatsReader();
    const first = (await reader.read(docker)).find((c) => c.containerId === id);
    expect(first).toMatchObject({ containerId: id, cpuPercent: null, memoryLimitBytes: 64 * 1024 * 1024 });
    expect(first!.memoryUsedBytes).toBeGreaterThan(0);
    const second = await waitFor(async () => {
      const c = (await reader.read(docker)).find((x) => x.containerId === id);
      return c && c.cpuPercent !== null && c.cpuPercent > 0 ? c : undefined;
    }, 'a CPU reading of the busy container', 30_000, 200);
    expect(second.cpuPercent).toBeGreaterThan(0);
    expect(MetricsSampleSchema.safeParse({ at: new Date().toISOString(), host: await new HostReader({ stateDir: '/' }).read(), containers: [second] }).success).toBe(true);
  }, 60_000);
});
