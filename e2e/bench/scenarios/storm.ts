/**
 * 5. Reconnect storm: N agents connected, each running a script that writes
 * a line a second; the server is restarted (SIGTERM, start again on the same
 * port and database). The agents reconnect on their own, with the agent's
 * backoff and jitter (nextDelay: first retry 0.5–2 s, then between the
 * previous delay and twice it). Time until all are back; then, once every
 * run is over, every stored log is compared with what its agent wrote.
 */
import { Fleet } from '../lib/fleet';
import { benchScript, paced } from '../lib/output';
import type { Row, ScenarioResult } from '../lib/report';
import { KapitanServer, RelayServer, type BenchServer, type RestartTimes } from '../lib/servers';
import { nowMs, sleep } from '../lib/stats';
import type { Verification } from '../lib/store';
import { MiB, type BenchContext, type Scenario } from '../lib/context';

interface Outcome {
  agents: number;
  stopS: number;
  startS: number;
  /** Until /api/health answered 200 (Kapitan; it needs a pooled database connection). */
  readyS: number | null;
  /** Agents back 5 s after the server listened. */
  backAfterUp5s: number;
  backFromRestartS: number;
  backFromUpS: number;
  back: number;
  noticed: number;
  connectErrors: number;
  finishedS: number;
  statuses: Record<string, number> | null;
  verification: Verification | null;
  duplicateDispatches: number;
  /** Machines online in the database once all were back (Kapitan). */
  online: number | null;
  /** Agents back, sampled each second from the moment the restart began. */
  progress: number[];
}

async function measure(kind: 'kapitan' | 'baseline', n: number, lines: number, ctx: BenchContext): Promise<Outcome> {
  const server: BenchServer = kind === 'kapitan' ? await KapitanServer.start({ db: ctx.db ?? 'mysql', cpuProfDir: ctx.cpuProfDir }) : await RelayServer.start();
  try {
    const token = server instanceof KapitanServer ? await server.enrolmentToken(n) : undefined;
    ctx.log(`${kind}: enrolling and connecting ${n} agents`);
    const fleet = await Fleet.start({ role: kind, serverUrl: server.url, count: n, token, tuning: { outboxBytes: 1 * MiB }, log: ctx.log });
    try {
      await fleet.connect(2000);
      await fleet.waitFor((s) => s.ready >= n, 10 * 60_000, 'agents ready');
      await sleep(2000);
      const run = await server.run(benchScript(paced(lines, 80, 1)), { all: true });
      await fleet.waitFor((s) => s.running >= n, 120_000, 'every script running');
      ctx.log(`${kind}: ${n} scripts writing a line a second; restarting the server in 5 s`);
      await sleep(5000);
      await fleet.mark();
      const errors0 = fleet.status().connectErrors;
      const t0 = nowMs();
      // How many are back, each second from the moment the restart begins.
      const progress: number[] = [];
      const sampler = setInterval(() => progress.push(fleet.status().back), 1000);
      let tBack = NaN;
      let times: RestartTimes;
      try {
        times = await server.restart();
        ctx.log(
          `${kind}: server restarted (stop ${(times.stopMs / 1000).toFixed(1)} s, listening after ${(times.startMs / 1000).toFixed(1)} s` +
            `${times.readyMs === null ? '' : `, /api/health 200 after ${(times.readyMs / 1000).toFixed(1)} s`}); waiting for the agents`,
        );
        try {
          await fleet.waitFor((s) => s.back >= n && s.ready >= n, 180_000, 'every agent back');
          tBack = nowMs();
        } catch (err) {
          ctx.log(`${kind}: ${(err as Error).message}`);
        }
      } finally {
        clearInterval(sampler);
      }
      const tUp = t0 + times.stopMs + times.startMs;
      ctx.log(`${kind}: back after each second: ${progress.join(' ')}`);
      const s = fleet.status();
      // Presence must match reality: every connected agent online in the database (heartbeats flush within 5 s).
      let online: number | null = null;
      if (server instanceof KapitanServer) {
        const deadline = Date.now() + 15_000;
        do {
          online = await server.store.onlineMachines();
          if (online === n) break;
          await sleep(500);
        } while (Date.now() < deadline);
      }
      ctx.log(`${kind}: ${s.back}/${n} back${online === null ? '' : `, ${online} online in the database`}; waiting for the runs to end`);
      await fleet.waitFor((st) => st.done >= n, 10 * 60_000, 'every run finished and acknowledged');
      const finishedS = (nowMs() - t0) / 1000;
      const { runs } = await fleet.collect();
      const ids = new Set(run.executions.map((e) => e.id));
      const mine = runs.filter((r) => ids.has(r.executionId));
      const out: Outcome = {
        agents: n,
        stopS: times.stopMs / 1000,
        startS: times.startMs / 1000,
        readyS: times.readyMs === null ? null : times.readyMs / 1000,
        backAfterUp5s: progress[Math.ceil((tUp - t0) / 1000) + 4] ?? s.back,
        backFromRestartS: (tBack - t0) / 1000,
        backFromUpS: (tBack - tUp) / 1000,
        back: s.back,
        noticed: s.down,
        connectErrors: s.connectErrors - errors0,
        finishedS,
        statuses: null,
        verification: null,
        duplicateDispatches: mine.reduce((a, r) => a + r.duplicateDispatches, 0),
        online,
        progress,
      };
      if (server instanceof KapitanServer) {
        await sleep(500);
        out.statuses = await server.store.statusCounts(run.runId);
        ctx.log(`${kind}: verifying ${mine.length} stored logs`);
        out.verification = await server.store.verify(mine);
      }
      return out;
    } finally {
      await fleet.stop();
    }
  } finally {
    await server.dispose();
  }
}

export const storm: Scenario = {
  name: 'storm',
  title: '5. Reconnect storm: server restart with output flowing',
  async run(ctx): Promise<ScenarioResult> {
    const t0 = Date.now();
    const n = ctx.n ?? (ctx.size === 'large' ? 5_000 : 300);
    const lines = ctx.size === 'large' ? 60 : 30;
    const k = await measure('kapitan', n, lines, ctx);
    const b = ctx.skipBaseline ? null : await measure('baseline', n, lines, ctx);
    const v = k.verification!;
    const rows: Row[] = [
      { metric: 'agents that lost the connection', kapitan: k.noticed, baseline: b?.noticed ?? null, goal: `${n}` },
      { metric: 'server stop (SIGTERM → exit)', unit: 's', kapitan: k.stopS, baseline: b?.stopS ?? null },
      { metric: 'server start (→ listening)', unit: 's', kapitan: k.startS, baseline: b?.startS ?? null },
      { metric: 'server start (→ /api/health 200, through the database pool)', unit: 's', kapitan: k.readyS, baseline: 'n/a' },
      { metric: 'restart begins → every agent back', unit: 's', kapitan: k.backFromRestartS, baseline: b?.backFromRestartS ?? null, goal: '≤ 30 s', met: k.back >= n && k.backFromRestartS <= 30 },
      { metric: 'server listening → every agent back', unit: 's', kapitan: k.backFromUpS, baseline: b?.backFromUpS ?? null },
      { metric: 'agents back 5 s after the server listens', unit: '%', kapitan: (k.backAfterUp5s / n) * 100, baseline: b ? (b.backAfterUp5s / n) * 100 : null },
      { metric: 'agents back', kapitan: k.back, baseline: b?.back ?? null, goal: `${n}`, met: k.back >= n },
      { metric: 'machines online in the database then', kapitan: k.online, baseline: 'n/a', goal: `${n}`, met: k.online === n },
      { metric: 'failed connection attempts during the storm', kapitan: k.connectErrors, baseline: b?.connectErrors ?? null },
      { metric: 'executions succeeded', kapitan: k.statuses?.succeeded ?? 0, baseline: null, goal: `${n}`, met: (k.statuses?.succeeded ?? 0) === n },
      { metric: 'logs stored exactly as written', kapitan: `${v.identical}/${v.executions}`, baseline: 'n/a', goal: 'all', met: v.identical === v.executions },
      { metric: 'chunks lost', kapitan: v.missingChunks, baseline: 'n/a', goal: '0', met: v.missingChunks === 0 },
      { metric: 'chunks doubled or altered', kapitan: v.extraChunks + v.contentMismatches, baseline: 'n/a', goal: '0', met: v.extraChunks + v.contentMismatches === 0 },
      { metric: 'repeated dispatches of a running execution', kapitan: k.duplicateDispatches, baseline: b?.duplicateDispatches ?? null },
    ];
    return {
      name: 'storm',
      title: this.title,
      size: ctx.size,
      params: { agents: n, linesPerAgent: lines, db: ctx.db ?? 'mysql' },
      rows,
      notes: [
        `${n} agents, each running a script that writes ${lines} lines, one a second; the restart comes 5 s after all are running. Kapitan on ${ctx.db ?? 'mysql'}; the agents use the agent's own reconnect backoff (cap 60 s).`,
        '"every agent back": each agent has a new connection on which the server acknowledged its hello. Output written while disconnected waits in the agent\'s outbox and is sent again afterwards.',
        v.firstProblem ? `First problem found: ${v.firstProblem}` : 'Every stored log was read back and matched what its agent wrote (chunk count, sequence numbers, sha256, lines).',
      ],
      durationS: (Date.now() - t0) / 1000,
      raw: { kapitan: k, baseline: b },
    };
  },
};
