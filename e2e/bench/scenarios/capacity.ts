/**
 * 1. Capacity: N simulated agents connected and idle (heartbeats every 10 s,
 * engine pings), against a bare socket.io server holding the same N
 * connections of the same clients. Server memory per connected agent (RSS
 * from /proc, heap after a full GC, both relative to the same server before
 * any agent connected), event-loop lag and CPU while idle, time to connect.
 */
import { Fleet } from '../lib/fleet';
import { ProcSampler, readStatus } from '../lib/proc';
import type { Row, ScenarioResult } from '../lib/report';
import { idleStats, KapitanServer, RelayServer, type BenchServer } from '../lib/servers';
import { sleep } from '../lib/stats';
import { KiB, MiB, type BenchContext, type Scenario } from '../lib/context';

interface Side {
  connected: number;
  connectS: number;
  enrolS: number | null;
  rssPerAgent: number;
  heapPerAgent: number;
  rssTotal: number;
  rssBefore: number;
  heapBefore: number;
  heapAfter: number;
  lagP50Ms: number;
  lagP99Ms: number;
  lagMaxMs: number;
  cpuPercent: number;
  reconnectsDuringIdle: number;
  idleTicks: { lagP50Ms: number; lagP99Ms: number; lagMaxMs: number; elu: number }[];
}

async function measure(kind: 'kapitan' | 'baseline', n: number, idleS: number, ctx: BenchContext): Promise<Side> {
  const server: BenchServer = kind === 'kapitan' ? await KapitanServer.start({ db: ctx.db ?? 'mysql', cpuProfDir: ctx.cpuProfDir }) : await RelayServer.start();
  try {
    const token = server instanceof KapitanServer ? await server.enrolmentToken(n) : undefined;
    ctx.log(`${kind}: enrolling ${n} simulated agents`);
    const fleet = await Fleet.start({ role: kind, serverUrl: server.url, count: n, token, tuning: { outboxBytes: 1 * MiB }, log: ctx.log });
    try {
      // A fresh process: what the enrolments left in the heap and in RSS is not counted.
      if (server instanceof KapitanServer) await server.restart();
      // A tenth first: what the first connections cost once (code, pools, caches) is not counted per agent.
      const warm = Math.max(1, Math.round(n / 10));
      const t0 = Date.now();
      await fleet.connect(2000, warm);
      await fleet.waitFor((s) => s.ready >= warm, 10 * 60_000, `${warm} agents ready`);
      const warmMs = Date.now() - t0;
      await sleep(3000);
      const before = await server.gcStats();
      const rss0 = readStatus(server.pid)!.rss;
      ctx.log(`${kind}: ${warm} agents connected (RSS ${(rss0 / MiB).toFixed(0)} MiB, heap ${(before.heapUsed / MiB).toFixed(0)} MiB); connecting the other ${n - warm}`);
      const t1 = Date.now();
      await fleet.connect(2000);
      await fleet.waitFor((s) => s.ready >= n, 10 * 60_000, `${n} agents ready`);
      const connectS = (warmMs + Date.now() - t1) / 1000;
      ctx.log(`${kind}: ${n} agents ready in ${connectS.toFixed(1)} s; idle for ${idleS} s`);
      await sleep(3000);
      await fleet.mark();
      const from = Date.now();
      const sampler = new ProcSampler(server.pid, 1000);
      await sleep(idleS * 1000);
      const cpu = sampler.stop();
      const to = Date.now();
      const lag = idleStats(server.ticks, from, to);
      const idleTicks = server.ticks.filter((t) => t.reason === 'tick' && t.at >= from && t.at <= to).map(({ lagP50Ms, lagP99Ms, lagMaxMs, elu }) => ({ lagP50Ms, lagP99Ms, lagMaxMs, elu }));
      const status = fleet.status();
      const after = await server.gcStats();
      const rss1 = readStatus(server.pid)!.rss;
      const connected = server instanceof KapitanServer ? await server.store.onlineMachines() : (await (server as RelayServer).relayStats()).machines;
      return {
        connected,
        connectS,
        enrolS: server instanceof KapitanServer ? fleet.enrolMs / 1000 : null,
        rssPerAgent: (rss1 - rss0) / (n - warm),
        heapPerAgent: (after.heapUsed - before.heapUsed) / (n - warm),
        rssTotal: rss1,
        rssBefore: rss0,
        heapBefore: before.heapUsed,
        heapAfter: after.heapUsed,
        lagP50Ms: lag.lagP50Ms,
        lagP99Ms: lag.lagP99Ms,
        lagMaxMs: lag.lagMaxMs,
        cpuPercent: cpu.cpuPercent,
        reconnectsDuringIdle: status.down,
        idleTicks,
      };
    } finally {
      await fleet.stop();
    }
  } finally {
    await server.dispose();
  }
}

export const capacity: Scenario = {
  name: 'capacity',
  title: '1. Capacity: idle agents connected',
  async run(ctx): Promise<ScenarioResult> {
    const t0 = Date.now();
    const n = ctx.n ?? (ctx.size === 'large' ? 10_000 : 500);
    const idleS = ctx.size === 'large' ? 30 : 8;
    const k = await measure('kapitan', n, idleS, ctx);
    const b = ctx.skipBaseline ? null : await measure('baseline', n, idleS, ctx);
    const goal = (kv: number, bv: number | undefined): boolean | null => (bv === undefined || !(bv > 0) ? null : kv <= 1.5 * bv);
    const rows: Row[] = [
      { metric: 'agents connected', kapitan: k.connected, baseline: b?.connected ?? null, goal: `${n}`, met: k.connected === n },
      { metric: 'time to connect all', unit: 's', kapitan: k.connectS, baseline: b?.connectS ?? null },
      { metric: 'server RSS per agent', unit: 'KiB', kapitan: k.rssPerAgent / KiB, baseline: b ? b.rssPerAgent / KiB : null, goal: '≤ 1.5× baseline', met: goal(k.rssPerAgent, b?.rssPerAgent) },
      { metric: 'server heap per agent', unit: 'KiB', kapitan: k.heapPerAgent / KiB, baseline: b ? b.heapPerAgent / KiB : null, goal: '≤ 1.5× baseline', met: goal(k.heapPerAgent, b?.heapPerAgent) },
      { metric: `server RSS with ${n} agents`, unit: 'MiB', kapitan: k.rssTotal / MiB, baseline: b ? b.rssTotal / MiB : null },
      { metric: `server RSS with ${Math.max(1, Math.round(n / 10))} agents`, unit: 'MiB', kapitan: k.rssBefore / MiB, baseline: b ? b.rssBefore / MiB : null },
      { metric: 'idle event-loop lag p50', unit: 'ms', kapitan: k.lagP50Ms, baseline: b?.lagP50Ms ?? null },
      { metric: 'idle event-loop lag p99', unit: 'ms', kapitan: k.lagP99Ms, baseline: b?.lagP99Ms ?? null },
      { metric: 'idle event-loop lag max', unit: 'ms', kapitan: k.lagMaxMs, baseline: b?.lagMaxMs ?? null },
      { metric: 'idle server CPU', unit: '% of a core', kapitan: k.cpuPercent, baseline: b?.cpuPercent ?? null },
      { metric: 'agents that dropped while idle', kapitan: k.reconnectsDuringIdle, baseline: b?.reconnectsDuringIdle ?? null, goal: '0', met: k.reconnectsDuringIdle === 0 },
    ];
    return {
      name: 'capacity',
      title: this.title,
      size: ctx.size,
      params: { agents: n, idleSeconds: idleS, db: ctx.db ?? 'mysql' },
      rows,
      notes: [
        `Kapitan on ${ctx.db ?? 'mysql'}; ${n} agents enrolled over REST in ${k.enrolS?.toFixed(1)} s before the measurement; connections opened at up to 2,000/s.`,
        'Per-agent memory = (with N − with N/10) / (9N/10), both read after a forced full GC (RSS from /proc/<pid>/status), so one-time costs of the first connections are not counted per agent.',
        'Event-loop lag: perf_hooks histogram (10 ms resolution) per second, averaged over the idle window (max: the worst second).',
      ],
      durationS: (Date.now() - t0) / 1000,
      raw: { kapitan: k, baseline: b },
    };
  },
};
