/**
 * Metrics: N simulated agents each sending a metrics sample (host + 20
 * containers) at the default interval (10 s), against the bare relay doing
 * the same hop without validation or storage. Samples acknowledged per
 * second, rows stored per second (one host row and one per known container
 * per sample), server CPU and event-loop lag over the window.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { ProcSampler } from '../lib/proc';
import type { Row, ScenarioResult } from '../lib/report';
import { idleStats, KapitanServer, RelayServer, type BenchServer } from '../lib/servers';
import { sleep } from '../lib/stats';
import type { BenchContext, Scenario } from '../lib/context';

const WORKER = path.join(__dirname, '../workers/metrics-agents.cjs');
const CONTAINERS = 20;
const INTERVAL_MS = 10_000;

interface WorkerStats {
  connected: number;
  sent: number;
  acked: number;
  failed: number;
  lastError: string | null;
}

class MetricsAgents {
  private constructor(private readonly child: ChildProcess) {}

  static async start(options: { url: string; mode: 'kapitan' | 'baseline'; token?: string; count: number }): Promise<MetricsAgents> {
    const child = fork(WORKER, [JSON.stringify({ ...options, intervalMs: INTERVAL_MS, containers: CONTAINERS })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const a = new MetricsAgents(child);
    await a.next('ready', 10 * 60_000);
    return a;
  }

  private next<T>(type: string, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`metrics agents: no ${type} within ${timeoutMs} ms`)), timeoutMs);
      const on = (m: { type: string; message?: string }) => {
        if (m.type === 'error') {
          clearTimeout(timer);
          this.child.off('message', on);
          reject(new Error(m.message));
        } else if (m.type === type) {
          clearTimeout(timer);
          this.child.off('message', on);
          resolve(m as T);
        }
      };
      this.child.on('message', on);
    });
  }

  async stats(): Promise<WorkerStats> {
    const p = this.next<WorkerStats>('stats', 30_000);
    this.child.send({ type: 'stats' });
    return p;
  }

  async stop(): Promise<void> {
    const exited = new Promise((r) => this.child.once('exit', r));
    this.child.send({ type: 'stop' });
    await Promise.race([exited, sleep(5000)]);
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

interface Side {
  agents: number;
  samplesPerS: number;
  hostRowsPerS: number | null;
  containerRowsPerS: number | null;
  failed: number;
  lastError: string | null;
  cpuPercent: number;
  lagP99Ms: number;
  lagMaxMs: number;
}

async function measure(kind: 'kapitan' | 'baseline', n: number, windowS: number, ctx: BenchContext): Promise<Side> {
  const server: BenchServer = kind === 'kapitan' ? await KapitanServer.start({ db: ctx.db ?? 'mysql', cpuProfDir: ctx.cpuProfDir }) : await RelayServer.start();
  try {
    const token = server instanceof KapitanServer ? await server.enrolmentToken(n) : undefined;
    ctx.log(`${kind}: starting ${n} simulated agents with ${CONTAINERS} containers each`);
    const agents = await MetricsAgents.start({ url: server.url, mode: kind, token, count: n });
    try {
      // one whole interval first: every agent has started its loop and the first rows of each machine are in
      await sleep(INTERVAL_MS + 2000);
      const rows = async () => (server instanceof KapitanServer ? server.store.metricsRows() : null);
      const r0 = await rows();
      const s0 = await agents.stats();
      const from = Date.now();
      const sampler = new ProcSampler(server.pid, 1000);
      ctx.log(`${kind}: measuring for ${windowS} s`);
      await sleep(windowS * 1000);
      const cpu = sampler.stop();
      const to = Date.now();
      const s1 = await agents.stats();
      const r1 = await rows();
      const seconds = (to - from) / 1000;
      const lag = idleStats(server.ticks, from, to);
      return {
        agents: s1.connected,
        samplesPerS: (s1.acked - s0.acked) / seconds,
        hostRowsPerS: r0 && r1 ? (r1.host - r0.host) / seconds : null,
        containerRowsPerS: r0 && r1 ? (r1.containers - r0.containers) / seconds : null,
        failed: s1.failed,
        lastError: s1.lastError,
        cpuPercent: cpu.cpuPercent,
        lagP99Ms: lag.lagP99Ms,
        lagMaxMs: lag.lagMaxMs,
      };
    } finally {
      await agents.stop();
    }
  } finally {
    await server.dispose();
  }
}

export const metrics: Scenario = {
  name: 'metrics',
  title: '10. Metrics: agents reporting host + 20 containers every 10 s',
  async run(ctx): Promise<ScenarioResult> {
    const t0 = Date.now();
    const n = ctx.n ?? (ctx.size === 'large' ? 1000 : 200);
    const windowS = ctx.size === 'large' ? 60 : 30;
    const k = await measure('kapitan', n, windowS, ctx);
    const b = ctx.skipBaseline ? null : await measure('baseline', n, windowS, ctx);
    const expectedSamples = n / (INTERVAL_MS / 1000);
    const expectedRows = expectedSamples * (1 + CONTAINERS);
    const storedRows = (k.hostRowsPerS ?? 0) + (k.containerRowsPerS ?? 0);
    const rows: Row[] = [
      { metric: 'agents reporting', kapitan: k.agents, baseline: b?.agents ?? null, goal: `${n}`, met: k.agents === n },
      { metric: 'samples acknowledged', unit: '/s', kapitan: k.samplesPerS, baseline: b?.samplesPerS ?? null, goal: `≈ ${expectedSamples.toFixed(0)}/s`, met: k.samplesPerS >= 0.95 * expectedSamples },
      { metric: 'rows stored (host + containers)', unit: '/s', kapitan: storedRows, baseline: null, goal: `≈ ${expectedRows.toFixed(0)}/s`, met: storedRows >= 0.95 * expectedRows },
      { metric: 'host rows stored', unit: '/s', kapitan: k.hostRowsPerS, baseline: null },
      { metric: 'container rows stored', unit: '/s', kapitan: k.containerRowsPerS, baseline: null },
      { metric: 'samples refused or unacknowledged', kapitan: k.failed, baseline: b?.failed ?? null, goal: '0', met: k.failed === 0 },
      { metric: 'server CPU', unit: '% of a core', kapitan: k.cpuPercent, baseline: b?.cpuPercent ?? null },
      { metric: 'event-loop lag p99', unit: 'ms', kapitan: k.lagP99Ms, baseline: b?.lagP99Ms ?? null },
      { metric: 'event-loop lag max', unit: 'ms', kapitan: k.lagMaxMs, baseline: b?.lagMaxMs ?? null },
    ];
    return {
      name: 'metrics',
      title: this.title,
      size: ctx.size,
      params: { agents: n, containersPerAgent: CONTAINERS, intervalMs: INTERVAL_MS, windowSeconds: windowS, db: ctx.db ?? 'mysql' },
      rows,
      notes: [
        `Kapitan on ${ctx.db ?? 'mysql'}; each simulated agent reported ${CONTAINERS} running containers in a snapshot first, so every container reading is stored; the agents' samples are spread evenly over the interval.`,
        'The baseline relays each sample to the machine\'s /live room and acknowledges it, with no validation and no storage.',
        ...(k.lastError ? [`last refusal: ${k.lastError}`] : []),
      ],
      durationS: (Date.now() - t0) / 1000,
      raw: { kapitan: k, baseline: b },
    };
  },
};
