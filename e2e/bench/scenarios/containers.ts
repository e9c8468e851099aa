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
import { Fleet } from '../lib/fleet';
import { ProcSampler } from '../lib/proc';
import type { Row, ScenarioResult } from '../lib/report';
import { KapitanServer, RelayServer, ask, idleStats, type BenchServer } from '../lib/servers';
import { nowMs, sleep, summarize, type Summary } from '../lib/stats';
import { MiB, type BenchContext, type Scenario } from '../lib/context';

const CONTAINERS = 20;
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
}

class Watcher {
  readonly snapshots = new Set<string>();
  readonly latencies: number[] = [];
  readonly seen = new Set<string>();
  lastArrival = 0;
  private burstFrom = Infinity;

  constructor(socket: Socket) {
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
        this.latencies.push(now - at);
        this.lastArrival = now;
      }
    });
  }

  startBurst(at: number): void {
    this.burstFrom = at;
  }
}

async function measure(kind: 'kapitan' | 'baseline', n: number, perAgent: number, windowMs: number, ctx: BenchContext): Promise<Outcome> {
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
      const fleet = await Fleet.start({ role: kind, serverUrl: server.url, count: n, token, containers: CONTAINERS, tuning: { outboxBytes: 1 * MiB }, log: ctx.log });
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
            seconds,
            cpuPercent: burstCpu.cpuPercent,
            lagP99Ms: lag.lagP99Ms,
            lagMaxMs: lag.lagMaxMs,
            elu: lag.elu,
            rowsPerS: (after.changedContainers - before.changedContainers) / seconds,
            changeMessages: after.changeMessages - before.changeMessages,
            restartedRows,
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
  title: '9. Containers: snapshots and a burst of Docker events to the dashboard',
  async run(ctx): Promise<ScenarioResult> {
    const t0 = Date.now();
    const n = ctx.n ?? (ctx.size === 'large' ? 10_000 : 1_000);
    const perAgent = 5;
    const windowMs = 5_000;
    const k = await measure('kapitan', n, perAgent, windowMs, ctx);
    const b = ctx.skipBaseline ? null : await measure('baseline', n, perAgent, windowMs, ctx);
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
      { metric: 'burst: first event → last restart at the dashboard', unit: 's', kapitan: k.burst.seconds, baseline: b?.burst.seconds ?? null },
      { metric: 'burst: server CPU', unit: '% of a core', kapitan: k.burst.cpuPercent, baseline: b?.burst.cpuPercent ?? null },
      { metric: 'burst: server event-loop lag p99 (mean of 1 s windows)', unit: 'ms', kapitan: k.burst.lagP99Ms, baseline: b?.burst.lagP99Ms ?? null },
      { metric: 'burst: server event-loop lag max', unit: 'ms', kapitan: k.burst.lagMaxMs, baseline: b?.burst.lagMaxMs ?? null },
      { metric: 'burst: `containers:changed` messages acknowledged', kapitan: k.burst.changeMessages, baseline: b?.burst.changeMessages ?? null },
      { metric: 'burst: container rows written per second', unit: 'rows/s', kapitan: k.burst.rowsPerS, baseline: b?.burst.rowsPerS ?? null },
      { metric: 'restarted containers stored', kapitan: k.burst.restartedRows, baseline: 'n/a', goal: `${restarts}`, met: k.burst.restartedRows === restarts },
    ];
    return {
      name: 'containers',
      title: this.title,
      size: ctx.size,
      params: { agents: n, containersPerAgent: CONTAINERS, restartsPerAgent: perAgent, windowMs, db: ctx.db ?? 'mysql' },
      rows,
      notes: [
        `${n} simulated agents, each the agent's own ContainerSupervisor (debounce 150 ms) over an in-memory engine of ${CONTAINERS} containers; Kapitan on ${ctx.db ?? 'mysql'}. Burst: every agent restarts ${perAgent} of its containers, each at a random moment within ${windowMs / 1000} s (${Math.round(restarts / (windowMs / 1000))} restarts/s in all); each restart is die, stop, start, restart events, coalesced by the supervisor into one patch, plus the supervisor's second read of a started container 1 s later (ports).`,
        'Latency: from the moment the simulated engine wrote the events (worker clock) to the `containers:updated` carrying the container at a dashboard socket subscribed to the project (runner clock, same host); it includes the supervisor\'s 150 ms debounce. Rows written per second: containers in acknowledged `containers:changed` messages (Kapitan acknowledges after the upsert commits) over the burst.',
      ],
      durationS: (Date.now() - t0) / 1000,
      raw: { kapitan: k, baseline: b },
    };
  },
};
