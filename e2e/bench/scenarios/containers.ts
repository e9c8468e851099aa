/**
 * 9. Containers: N simulated agents, each supervising a simulated Docker
 * engine of 20 containers (agent/'s SimulatedDockerEngine behind the agent's
 * own ContainerSupervisor: the same debounce, queue, snapshot and patch
 * messages as against dockerd). They connect and report their snapshots;
 * then a burst: every agent restarts some of its containers, each at a
 * random moment of a short window. A dashboard socket subscribed to the
 * project measures Docker event → `containers:updated` for every restart
 * (the event's moment travels in the container's label `kapitan.bench.at`);
 * the server's CPU and event-loop lag and the container rows stored per
 * second are taken over the same window. The baseline relays the same
 * messages to the same dashboard subscription with nothing in between.
 */
import type { Socket } from 'socket.io-client';
import { DEFAULT_CONFIG } from '@kapitan/agent';
import { Fleet } from '../lib/fleet';
import { ProcSampler } from '../lib/proc';
import type { Row, ScenarioResult } from '../lib/report';
import { KapitanServer, RelayServer, ask, idleStats, type BenchServer } from '../lib/servers';
import { nowMs, sleep, summarize, type Summary } from '../lib/stats';
import { MiB, type BenchContext, type Scenario } from '../lib/context';

const CONTAINERS = 20;
/** The agent's default idle metrics interval (10 s): what every agent of a fleet sends when nobody watches. */
const METRICS_INTERVAL_MS = DEFAULT_CONFIG.metricsIntervalMs;
const LABEL = 'kapitan.bench.at';

interface Outcome {
  agents: number;
  /** connect() → every agent's snapshot at the dashboard. */
  snapshotsS: number;
  snapshotRowsPerS: number;
  snapshotCpuPercent: number;
  rowsStored: number | null;
  burst: {
    restarts: number;
    seen: number;
    latency: Summary;
    /** Docker event → the agent emitting the patch that carries it (debounce, the supervisor's queue, the worker's CPU). */
    agentSide: Summary;
    /** The agent's emit → the dashboard (the server's share, and the runner's). */
    serverSide: Summary;
    /** The agent's emit → its ack (Kapitan: committed). */
    ack: Summary;
    seconds: number;
    cpuPercent: number;
    lagP99Ms: number;
    lagMaxMs: number;
    elu: number;
    /** Container rows written (acknowledged patches' containers) per second of the burst. */
    rowsPerS: number;
    changeMessages: number;
    restartedRows: number | null;
  };
  metrics: {
    seconds: number;
    sent: number;
    acked: number;
    refused: number;
    failed: number;
    ack: Summary;
    hostRows: number | null;
    containerRows: number | null;
    /** `metrics:host` events at the dashboard subscribed to the project. */
    liveHost: number;
    cpuPercent: number;
    lagP99Ms: number;
    lagMaxMs: number;
    elu: number;
  };
}

class Watcher {
  readonly snapshots = new Set<string>();
  liveHost = 0;
  readonly latencies: number[] = [];
  readonly seen = new Set<string>();
  /** Arrival of each restart (first `containers:updated` carrying it), by `machineId:containerId:at`. */
  readonly arrivals = new Map<string, number>();
  lastArrival = 0;
  private burstFrom = Infinity;

  constructor(socket: Socket) {
    socket.on('metrics:host', () => void this.liveHost++);
    socket.on('containers:updated', (e: { machineId: string; snapshot: boolean; containers: { id: string; labels: Record<string, string> }[] }) => {
      const now = nowMs();
      if (e.snapshot) this.snapshots.add(e.machineId);
      for (const c of e.containers) {
        const at = Number(c.labels[LABEL]);
        if (!Number.isFinite(at) || at < this.burstFrom) continue;
        // The supervisor reads a started container once more a second later: only the first arrival of each restart counts.
        const key = `${e.machineId}:${c.id}:${c.labels[LABEL]}`;
        if (this.seen.has(key)) continue;
        this.seen.add(key);
        this.arrivals.set(key, now);
        this.latencies.push(now - at);
        this.lastArrival = now;
      }
    });
  }

  startBurst(at: number): void {
    this.burstFrom = at;
  }
}

async function measure(kind: 'kapitan' | 'baseline', n: number, perAgent: number, windowMs: number, metricsS: number, ctx: BenchContext): Promise<Outcome> {
  const server: BenchServer = kind === 'kapitan' ? await KapitanServer.start({ db: ctx.db ?? 'mysql', cpuProfDir: ctx.cpuProfDir }) : await RelayServer.start();
  try {
    const token = server instanceof KapitanServer ? await server.enrolmentToken(n) : undefined;
    const dashboard = await server.dashboard();
    try {
      const projectId = server instanceof KapitanServer ? server.projectId : 'bench';
      const ack = await ask<{ ok: boolean }>(dashboard, 'subscribe:project', { projectId });
      if (!ack.ok) throw new Error(`subscribe:project refused: ${JSON.stringify(ack)}`);
      const watcher = new Watcher(dashboard);
      ctx.log(`${kind}: enrolling ${n} agents with ${CONTAINERS} simulated containers each`);
      const fleet = await Fleet.start({ role: kind, serverUrl: server.url, count: n, token, containers: CONTAINERS, metricsIntervalMs: METRICS_INTERVAL_MS, tuning: { outboxBytes: 1 * MiB }, log: ctx.log });
      try {
        const snapCpu = new ProcSampler(server.pid, 1000);
        const t0 = nowMs();
        await fleet.connect(2000);
        await fleet.waitFor((s) => s.ready >= n, 10 * 60_000, 'agents ready');
        const deadline = Date.now() + 10 * 60_000;
        while (watcher.snapshots.size < n) {
          if (Date.now() > deadline) throw new Error(`only ${watcher.snapshots.size}/${n} snapshots at the dashboard after 10 min`);
          await sleep(50);
        }
        const snapshotsS = (nowMs() - t0) / 1000;
        const snapCpuPercent = snapCpu.stop().cpuPercent;
        const rowsStored = server instanceof KapitanServer ? (await server.store.containerRows()).rows : null;
        ctx.log(`${kind}: ${n} snapshots at the dashboard after ${snapshotsS.toFixed(1)} s${rowsStored === null ? '' : `, ${rowsStored} container rows stored`}`);
        await sleep(3000);

        const restarts = n * perAgent;
        const before = fleet.status();
        ctx.log(`${kind}: burst: ${restarts} container restarts within ${windowMs / 1000} s`);
        const cpu = new ProcSampler(server.pid, 1000);
        const b0 = nowMs();
        watcher.startBurst(b0);
        await fleet.containerBurst(perAgent, windowMs);
        const burstDeadline = Date.now() + windowMs + 5 * 60_000;
        while (watcher.seen.size < restarts && Date.now() < burstDeadline) await sleep(50);
        const end = watcher.seen.size ? watcher.lastArrival : nowMs();
        const burstCpu = cpu.stop();
        const after = fleet.status();
        if (watcher.seen.size < restarts) ctx.log(`${kind}: only ${watcher.seen.size}/${restarts} restarts reached the dashboard`);
        const seconds = (end - b0) / 1000;
        const lag = idleStats(server.ticks, b0, end);
        let restartedRows: number | null = null;
        if (server instanceof KapitanServer) restartedRows = (await server.store.containerRows()).restarted;

        // ---- metrics: every agent's host and containers at the default interval, for a while
        await sleep(2000);
        ctx.log(`${kind}: metrics: ${n} agents sampling host + ${CONTAINERS} containers every ${METRICS_INTERVAL_MS / 1000} s for ${metricsS} s`);
        const live0 = watcher.liveHost;
        const m0 = fleet.status();
        const mCpu = new ProcSampler(server.pid, 1000);
        const mt0 = nowMs();
        await fleet.metrics(true);
        await sleep(metricsS * 1000);
        await fleet.metrics(false);
        const mt1 = nowMs();
        const mCpuOut = mCpu.stop();
        // The samples in flight when the samplers stopped are answered (or time out) before counting.
        await fleet
          .waitFor((st) => st.metricsSent === st.metricsAcked + st.metricsRefused + st.metricsFailed, 60_000, 'metrics samples in flight answered')
          .catch((err: Error) => ctx.log(`${kind}: ${err.message}`));
        const m1 = fleet.status();
        const mLag = idleStats(server.ticks, mt0, mt1);
        const stored = server instanceof KapitanServer ? await server.store.rawMetricsRows() : null;
        const { metricsAckMs, patches } = await fleet.collect();
        const agentSide: number[] = [];
        const serverSide: number[] = [];
        const patchAck: number[] = [];
        for (const [key, p] of patches) {
          const at = Number(key.slice(key.lastIndexOf(':') + 1));
          if (!(at >= b0)) continue;
          agentSide.push(p.emitMs - at);
          if (Number.isFinite(p.ackMs)) patchAck.push(p.ackMs - p.emitMs);
          const arrived = watcher.arrivals.get(key);
          if (arrived !== undefined) serverSide.push(arrived - p.emitMs);
        }
        return {
          agents: n,
          snapshotsS,
          snapshotRowsPerS: (n * CONTAINERS) / snapshotsS,
          snapshotCpuPercent: snapCpuPercent,
          rowsStored,
          burst: {
            restarts,
            seen: watcher.seen.size,
            latency: summarize(watcher.latencies),
            agentSide: summarize(agentSide),
            serverSide: summarize(serverSide),
            ack: summarize(patchAck),
            seconds,
            cpuPercent: burstCpu.cpuPercent,
            lagP99Ms: lag.lagP99Ms,
            lagMaxMs: lag.lagMaxMs,
            elu: lag.elu,
            rowsPerS: (after.changedContainers - before.changedContainers) / seconds,
            changeMessages: after.changeMessages - before.changeMessages,
            restartedRows,
          },
          metrics: {
            seconds: (mt1 - mt0) / 1000,
            sent: m1.metricsSent - m0.metricsSent,
            acked: m1.metricsAcked - m0.metricsAcked,
            refused: m1.metricsRefused - m0.metricsRefused,
            failed: m1.metricsFailed - m0.metricsFailed,
            ack: summarize(metricsAckMs),
            hostRows: stored?.host ?? null,
            containerRows: stored?.containers ?? null,
            liveHost: watcher.liveHost - live0,
            cpuPercent: mCpuOut.cpuPercent,
            lagP99Ms: mLag.lagP99Ms,
            lagMaxMs: mLag.lagMaxMs,
            elu: mLag.elu,
          },
        };
      } finally {
        await fleet.stop();
      }
    } finally {
      dashboard.disconnect();
    }
  } finally {
    await server.dispose();
  }
}

export const containers: Scenario = {
  name: 'containers',
  title: '11. Containers: snapshots and a burst of Docker events to the dashboard',
  async run(ctx): Promise<ScenarioResult> {
    const t0 = Date.now();
    const n = ctx.n ?? (ctx.size === 'large' ? 10_000 : 500);
    const perAgent = 5;
    const windowMs = 5_000;
    const metricsS = ctx.size === 'large' ? 60 : 30;
    const k = await measure('kapitan', n, perAgent, windowMs, metricsS, ctx);
    const b = ctx.skipBaseline ? null : await measure('baseline', n, perAgent, windowMs, metricsS, ctx);
    const km = k.metrics;
    const bm = b?.metrics;
    const expectedRows = km.sent * CONTAINERS;
    const restarts = n * perAgent;
    const rows: Row[] = [
      { metric: `connect → ${n} snapshots (${CONTAINERS} containers each) at the dashboard`, unit: 's', kapitan: k.snapshotsS, baseline: b?.snapshotsS ?? null },
      { metric: 'snapshot: container rows reported per second', unit: 'rows/s', kapitan: k.snapshotRowsPerS, baseline: b?.snapshotRowsPerS ?? null },
      { metric: 'snapshot: server CPU', unit: '% of a core', kapitan: k.snapshotCpuPercent, baseline: b?.snapshotCpuPercent ?? null },
      { metric: 'container rows stored after the snapshots', kapitan: k.rowsStored, baseline: 'n/a', goal: `${n * CONTAINERS}`, met: k.rowsStored === n * CONTAINERS },
      { metric: 'burst: restarts that reached the dashboard', kapitan: `${k.burst.seen}/${restarts}`, baseline: b ? `${b.burst.seen}/${restarts}` : null, goal: 'all', met: k.burst.seen === restarts },
      { metric: 'burst: Docker event → dashboard p50', unit: 'ms', kapitan: k.burst.latency.p50, baseline: b?.burst.latency.p50 ?? null },
      { metric: 'burst: Docker event → dashboard p99', unit: 'ms', kapitan: k.burst.latency.p99, baseline: b?.burst.latency.p99 ?? null, goal: '≤ 1000 ms', met: k.burst.latency.p99 <= 1000 },
      { metric: 'burst: Docker event → dashboard max', unit: 'ms', kapitan: k.burst.latency.max, baseline: b?.burst.latency.max ?? null },
      { metric: 'burst: of which Docker event → agent emits the patch p50 (agent side)', unit: 'ms', kapitan: k.burst.agentSide.p50, baseline: b?.burst.agentSide.p50 ?? null },
      { metric: 'burst: of which Docker event → agent emits the patch p99 (agent side)', unit: 'ms', kapitan: k.burst.agentSide.p99, baseline: b?.burst.agentSide.p99 ?? null },
      { metric: 'burst: of which agent emit → dashboard p50 (server side)', unit: 'ms', kapitan: k.burst.serverSide.p50, baseline: b?.burst.serverSide.p50 ?? null },
      { metric: 'burst: of which agent emit → dashboard p99 (server side)', unit: 'ms', kapitan: k.burst.serverSide.p99, baseline: b?.burst.serverSide.p99 ?? null },
      { metric: 'burst: `containers:changed` emit → ack p50 (Kapitan: stored)', unit: 'ms', kapitan: k.burst.ack.p50, baseline: b?.burst.ack.p50 ?? null },
      { metric: 'burst: `containers:changed` emit → ack p99 (Kapitan: stored)', unit: 'ms', kapitan: k.burst.ack.p99, baseline: b?.burst.ack.p99 ?? null },
      { metric: 'burst: first event → last restart at the dashboard', unit: 's', kapitan: k.burst.seconds, baseline: b?.burst.seconds ?? null },
      { metric: 'burst: server CPU', unit: '% of a core', kapitan: k.burst.cpuPercent, baseline: b?.burst.cpuPercent ?? null },
      { metric: 'burst: server event-loop utilisation', unit: '%', kapitan: k.burst.elu * 100, baseline: b ? b.burst.elu * 100 : null },
      { metric: 'burst: server event-loop lag p99 (mean of 1 s windows)', unit: 'ms', kapitan: k.burst.lagP99Ms, baseline: b?.burst.lagP99Ms ?? null },
      { metric: 'burst: server event-loop lag max', unit: 'ms', kapitan: k.burst.lagMaxMs, baseline: b?.burst.lagMaxMs ?? null },
      { metric: 'burst: `containers:changed` messages acknowledged', kapitan: k.burst.changeMessages, baseline: b?.burst.changeMessages ?? null },
      { metric: 'burst: container rows written per second', unit: 'rows/s', kapitan: k.burst.rowsPerS, baseline: b?.burst.rowsPerS ?? null },
      { metric: 'restarted containers stored', kapitan: k.burst.restartedRows, baseline: 'n/a', goal: `${restarts}`, met: k.burst.restartedRows === restarts },
      { metric: `metrics: samples sent in ${metricsS} s (host + ${CONTAINERS} containers each)`, kapitan: km.sent, baseline: bm?.sent ?? null },
      { metric: 'metrics: samples sent per second', unit: '/s', kapitan: km.sent / km.seconds, baseline: bm ? bm.sent / bm.seconds : null },
      { metric: 'metrics: acknowledged ok / refused / no ack', kapitan: `${km.acked} / ${km.refused} / ${km.failed}`, baseline: bm ? `${bm.acked} / ${bm.refused} / ${bm.failed}` : null, goal: 'all ok', met: km.acked === km.sent },
      { metric: 'metrics: host samples stored / sent', kapitan: `${km.hostRows}/${km.sent}`, baseline: 'n/a', goal: 'all', met: km.hostRows === km.sent },
      { metric: 'metrics: container readings stored / sent', kapitan: `${km.containerRows}/${expectedRows}`, baseline: 'n/a', goal: 'all', met: km.containerRows === expectedRows },
      { metric: 'metrics: sample sent → acknowledged (stored) p50', unit: 'ms', kapitan: km.ack.p50, baseline: bm?.ack.p50 ?? null },
      { metric: 'metrics: sample sent → acknowledged (stored) p99', unit: 'ms', kapitan: km.ack.p99, baseline: bm?.ack.p99 ?? null, goal: `< ${METRICS_INTERVAL_MS / 1000} s (the interval)`, met: km.ack.p99 < METRICS_INTERVAL_MS },
      { metric: 'metrics: `metrics:host` at the project dashboard', kapitan: km.liveHost, baseline: bm?.liveHost ?? null },
      { metric: 'metrics: server CPU', unit: '% of a core', kapitan: km.cpuPercent, baseline: bm?.cpuPercent ?? null },
      { metric: 'metrics: server event-loop utilisation', unit: '%', kapitan: km.elu * 100, baseline: bm ? bm.elu * 100 : null },
      { metric: 'metrics: server event-loop lag p99 (mean of 1 s windows)', unit: 'ms', kapitan: km.lagP99Ms, baseline: bm?.lagP99Ms ?? null },
    ];
    return {
      name: 'containers',
      title: this.title,
      size: ctx.size,
      params: { agents: n, containersPerAgent: CONTAINERS, restartsPerAgent: perAgent, windowMs, metricsS, metricsIntervalMs: METRICS_INTERVAL_MS, db: ctx.db ?? 'mysql' },
      rows,
      notes: [
        `${n} simulated agents, each the agent's own ContainerSupervisor (debounce 150 ms) over an in-memory engine of ${CONTAINERS} containers; Kapitan on ${ctx.db ?? 'mysql'}. Burst: every agent restarts ${perAgent} of its containers, each at a random moment within ${windowMs / 1000} s (${Math.round(restarts / (windowMs / 1000))} restarts/s in all); each restart is die, stop, start, restart events, coalesced by the supervisor into one patch, plus the supervisor's second read of a started container 1 s later (ports).`,
        'Latency: from the moment the simulated engine wrote the events (worker clock) to the `containers:updated` carrying the container at a dashboard socket subscribed to the project (runner clock, same host); it includes the supervisor\'s 150 ms debounce. It is split at the agent\'s emit of the patch (the worker times each \`containers:changed\` on its way out, untouched): Docker event → emit is the agent\'s share (debounce, the supervisor\'s one-at-a-time queue, which waits for the previous report\'s ack, and the worker\'s CPU), the same code for both servers; emit → dashboard is the server\'s (and the runner\'s). Rows written per second: containers in acknowledged `containers:changed` messages (Kapitan acknowledges after the upsert commits) over the burst.',
        `Metrics: then every agent runs the agent's own MetricsSampler (made-up host, the simulated engine's one-shot stats of its ${CONTAINERS} running containers) at the default idle interval of ${METRICS_INTERVAL_MS / 1000} s, each starting at a random moment of its first interval, for ${metricsS} s; nobody watches a machine, so no agent is asked to sample faster. Kapitan acknowledges a sample once stored (one per machine per raw interval); the stored rows are counted in the database. CPU: /proc of the server process; event-loop utilisation and lag: the server's own per-second figures (when the CPU share is far below the utilisation, the process was waiting for a core: the machine was overloaded).`,
      ],
      durationS: (Date.now() - t0) / 1000,
      raw: { kapitan: k, baseline: b },
    };
  },
};
