/**
 * 4. Fan-out: one run on N agents, each writing 100 lines and exiting. Time
 * from the REST request until every execution has started, until every
 * script has exited, and until every execution is final on the server with
 * all its output stored (then checked against what each agent wrote).
 */
import { Fleet } from '../lib/fleet';
import { benchScript, flatOut } from '../lib/output';
import type { Row, ScenarioResult } from '../lib/report';
import { KapitanServer, RelayServer, type BenchServer } from '../lib/servers';
import { nowMs, sleep } from '../lib/stats';
import type { Verification } from '../lib/store';
import { MiB, type BenchContext, type Scenario } from '../lib/context';

const LINES = 100;

interface Outcome {
  restMs: number;
  allStartedMs: number;
  allExitedMs: number;
  allStoredMs: number;
  verification: Verification | null;
  statuses: Record<string, number> | null;
}

async function measure(kind: 'kapitan' | 'baseline', n: number, ctx: BenchContext): Promise<Outcome> {
  const server: BenchServer = kind === 'kapitan' ? await KapitanServer.start({ db: ctx.db ?? 'mysql', cpuProfDir: ctx.cpuProfDir }) : await RelayServer.start();
  try {
    const token = server instanceof KapitanServer ? await server.enrolmentToken(n) : undefined;
    ctx.log(`${kind}: enrolling and connecting ${n} agents`);
    const fleet = await Fleet.start({ role: kind, serverUrl: server.url, count: n, token, tuning: { outboxBytes: 1 * MiB }, log: ctx.log });
    try {
      await fleet.connect(2000);
      await fleet.waitFor((s) => s.ready >= n, 10 * 60_000, 'agents ready');
      await sleep(3000);
      const before = server instanceof RelayServer ? (await server.relayStats()).finished : 0;
      ctx.log(`${kind}: one run on ${n} agents`);
      const t0 = nowMs();
      const run = await server.run(benchScript(flatOut(LINES, 80)), { all: true });
      const restMs = nowMs() - t0;
      if (run.executions.length !== n) throw new Error(`the run has ${run.executions.length} executions, expected ${n}`);
      const deadline = Date.now() + 10 * 60_000;
      for (;;) {
        const finished = server instanceof KapitanServer ? await server.store.finishedCount(run.runId) : (await (server as RelayServer).relayStats()).finished - before;
        if (finished >= n) break;
        if (Date.now() > deadline) throw new Error(`only ${finished}/${n} executions final after 10 min`);
        await sleep(25);
      }
      const allStoredMs = nowMs() - t0;
      const { runs } = await fleet.collect();
      const ids = new Set(run.executions.map((e) => e.id));
      const mine = runs.filter((r) => ids.has(r.executionId));
      const out: Outcome = {
        restMs,
        allStartedMs: Math.max(...mine.map((r) => r.startMs)) - t0,
        allExitedMs: Math.max(...mine.map((r) => r.endMs)) - t0,
        allStoredMs,
        verification: null,
        statuses: null,
      };
      if (server instanceof KapitanServer) {
        out.verification = await server.store.verify(mine);
        out.statuses = await server.store.statusCounts(run.runId);
      }
      return out;
    } finally {
      await fleet.stop();
    }
  } finally {
    await server.dispose();
  }
}

export const fanout: Scenario = {
  name: 'fanout',
  title: '4. Fan-out: one run on many agents',
  async run(ctx): Promise<ScenarioResult> {
    const t0 = Date.now();
    const n = ctx.n ?? (ctx.size === 'large' ? 1_000 : 100);
    const k = await measure('kapitan', n, ctx);
    const b = ctx.skipBaseline ? null : await measure('baseline', n, ctx);
    const v = k.verification!;
    const rows: Row[] = [
      { metric: 'REST request → 201', unit: 'ms', kapitan: k.restMs, baseline: b?.restMs ?? null },
      { metric: 'REST request → every script started', unit: 'ms', kapitan: k.allStartedMs, baseline: b?.allStartedMs ?? null },
      { metric: 'REST request → every script exited', unit: 'ms', kapitan: k.allExitedMs, baseline: b?.allExitedMs ?? null },
      { metric: 'REST request → every execution final, output stored', unit: 'ms', kapitan: k.allStoredMs, baseline: b?.allStoredMs ?? null },
      { metric: 'executions succeeded', kapitan: k.statuses?.succeeded ?? 0, baseline: null, goal: `${n}`, met: (k.statuses?.succeeded ?? 0) === n },
      { metric: 'logs stored exactly as written', kapitan: `${v.identical}/${v.executions}`, baseline: 'n/a', goal: 'all', met: v.identical === v.executions },
    ];
    return {
      name: 'fanout',
      title: this.title,
      size: ctx.size,
      params: { agents: n, linesPerAgent: LINES, db: ctx.db ?? 'mysql' },
      rows,
      notes: [
        `${n} agents, each writing ${LINES} lines of 80 bytes; Kapitan on ${ctx.db ?? 'mysql'}. "final, output stored": polled every 25 ms in the database (Kapitan marks an execution final only after committing its pending output); the relay counts \`execution:finished\` it acknowledged.`,
      ],
      durationS: (Date.now() - t0) / 1000,
      raw: { kapitan: k, baseline: b },
    };
  },
};
