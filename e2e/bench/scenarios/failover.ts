/**
 * 9. Failover: two server nodes on one MySQL database and one Redis behind a
 * real HAProxy (harness balancer.ts); N simulated agents connected through
 * it, each running a script that writes a line a second; one node is
 * SIGKILLed. Time until every agent it held is back (through HAProxy, on the
 * survivor) and until the database shows every machine online on the
 * survivor; then, once every run is over, every stored log is compared with
 * what its agent wrote (chunks lost / doubled). Baseline: two bare
 * socket.io relays behind the same HAProxy, one killed the same way (the
 * reconnect alone: a relay stores nothing, so nothing to verify).
 */
import { randomBytes } from 'node:crypto';
import { jwtSecret, redisUrl, startBalancer, startServer, withConnection, type TestBalancer, type TestServer } from '../../src/harness';
import { Fleet } from '../lib/fleet';
import { benchScript, paced } from '../lib/output';
import type { Row, ScenarioResult } from '../lib/report';
import { KapitanServer, RelayServer } from '../lib/servers';
import { nowMs, sleep } from '../lib/stats';
import type { Verification } from '../lib/store';
import { MiB, type BenchContext, type Scenario } from '../lib/context';

/** HAProxy's checks as docker/haproxy.cfg has them (every 1 s, out at the second failure): what a deployment would run. */
const BALANCER = { checkIntervalMs: 1000, fall: 2 };

interface Outcome {
  agents: number;
  /** Agents that lost their connection when the node died (those it held). */
  moved: number;
  /** Kill → every agent that lost its node ready again (its hello acknowledged by the survivor). */
  backS: number;
  /** Kill → the database shows every machine online on the survivor (Kapitan). */
  presenceS: number | null;
  back: number;
  connectErrors: number;
  statuses: Record<string, number> | null;
  verification: Verification | null;
  /** Agents back, sampled each second from the kill. */
  progress: number[];
}

/** Survivor-held online machines, as the database says. */
async function onlineOn(dbUrl: string, nodeId: string): Promise<number> {
  return withConnection(dbUrl, async (c) => {
    const [rows] = await c.query(`SELECT COUNT(*) AS n FROM machines WHERE status = 'online' AND nodeId = ?`, [nodeId]);
    return Number((rows as { n: number | string }[])[0]?.n ?? 0);
  });
}

async function measureKapitan(n: number, lines: number, ctx: BenchContext): Promise<Outcome> {
  const env = { REDIS_URL: redisUrl(), JWT_SECRET: jwtSecret(), KAPITAN_SECRETS_KEY: randomBytes(32).toString('base64') };
  // Node a owns the owner, the project and the store (direct database reads); node b, on the same database, dies.
  const a = await KapitanServer.start({ db: 'mysql', cpuProfDir: ctx.cpuProfDir, env: { ...env, KAPITAN_NODE_ID: 'bench-a' } });
  let b: TestServer | undefined;
  let lb: TestBalancer | undefined;
  try {
    const dbUrl = a.server.databaseUrl!;
    b = await startServer({
      database: { kind: 'mysql', name: 'shared', url: dbUrl, drop: async () => undefined },
      name: 'kapitan-b',
      env: { ...env, KAPITAN_NODE_ID: 'bench-b', KAPITAN_BENCH: '0', LOG_LEVEL: process.env.KAPITAN_BENCH_LOG_LEVEL ?? 'warn' },
    });
    lb = await startBalancer(
      [
        { name: 'a', port: a.server.port },
        { name: 'b', port: b.port },
      ],
      BALANCER,
    );
    const token = await a.enrolmentToken(n);
    ctx.log(`failover kapitan: enrolling and connecting ${n} agents through HAProxy`);
    const fleet = await Fleet.start({ role: 'kapitan', serverUrl: lb.url, count: n, token, tuning: { outboxBytes: 1 * MiB }, log: ctx.log });
    // What HAProxy thinks of the nodes, every 5 s until the end: a node taken out under load shows here.
    const watch = lb;
    const watcher = setInterval(() => void watch.status().then((st) => ctx.log(`failover kapitan: HAProxy ${JSON.stringify(st)} fleet ${JSON.stringify(fleet.status())}`), () => undefined), 5000);
    try {
      await fleet.connect(500);
      await fleet.waitFor((s) => s.ready >= n, 10 * 60_000, 'agents ready');
      const onB = await onlineOn(dbUrl, 'bench-b');
      ctx.log(`failover kapitan: ${n} ready, ${onB} of them on node b`);
      const run = await a.run(benchScript(paced(lines, 80, 1)), { all: true });
      await fleet.waitFor((s) => s.running >= n, Math.max(120, lines - 30) * 1000, 'every script running');
      await sleep(5000);
      await fleet.mark();
      const errors0 = fleet.status().connectErrors;
      const t0 = nowMs();
      await b.kill();
      const progress: number[] = [];
      const sampler = setInterval(() => progress.push(fleet.status().back), 1000);
      let backS = NaN;
      let presenceS: number | null = null;
      try {
        // Every agent that lost its node has said hello again (on the survivor: the only node left).
        await fleet.waitFor((s) => s.down > 0 && s.back >= s.down && s.ready >= n, 180_000, 'every agent back');
        backS = (nowMs() - t0) / 1000;
        const deadline = Date.now() + 60_000;
        while (Date.now() < deadline) {
          if ((await onlineOn(dbUrl, 'bench-a')) === n) {
            presenceS = (nowMs() - t0) / 1000;
            break;
          }
          await sleep(250);
        }
      } catch (err) {
        ctx.log(`failover kapitan: ${(err as Error).message}`);
      } finally {
        clearInterval(sampler);
      }
      const s = fleet.status();
      ctx.log(`failover kapitan: ${s.back}/${s.down} back in ${backS.toFixed(1)} s; presence on a in ${presenceS ?? 'n/a'} s; waiting for the runs`);
      await fleet.waitFor((st) => st.done >= n, 10 * 60_000, 'every run finished and acknowledged');
      const { runs } = await fleet.collect();
      const ids = new Set(run.executions.map((e) => e.id));
      const mine = runs.filter((r) => ids.has(r.executionId));
      await sleep(500);
      return {
        agents: n,
        moved: s.down,
        backS,
        presenceS,
        back: s.back,
        connectErrors: s.connectErrors - errors0,
        statuses: await a.store.statusCounts(run.runId),
        verification: await a.store.verify(mine),
        progress,
      };
    } finally {
      clearInterval(watcher);
      await fleet.stop();
    }
  } finally {
    await lb?.dispose();
    await b?.dispose();
    await a.dispose();
  }
}

async function measureBaseline(n: number, ctx: BenchContext): Promise<Outcome> {
  const a = await RelayServer.start();
  const b = await RelayServer.start();
  let lb: TestBalancer | undefined;
  try {
    lb = await startBalancer(
      [
        { name: 'a', port: a.port },
        { name: 'b', port: b.port },
      ],
      BALANCER,
    );
    ctx.log(`failover baseline: connecting ${n} agents through HAProxy to two bare relays`);
    const fleet = await Fleet.start({ role: 'baseline', serverUrl: lb.url, count: n, tuning: { outboxBytes: 1 * MiB }, log: ctx.log });
    try {
      await fleet.connect(500);
      await fleet.waitFor((s) => s.ready >= n, 10 * 60_000, 'agents ready');
      await sleep(2000);
      await fleet.mark();
      const errors0 = fleet.status().connectErrors;
      const t0 = nowMs();
      process.kill(b.pid, 'SIGKILL');
      const progress: number[] = [];
      const sampler = setInterval(() => progress.push(fleet.status().back), 1000);
      let backS = NaN;
      try {
        await fleet.waitFor((s) => s.down > 0 && s.back >= s.down && s.ready >= n, 180_000, 'every agent back');
        backS = (nowMs() - t0) / 1000;
      } catch (err) {
        ctx.log(`failover baseline: ${(err as Error).message}`);
      } finally {
        clearInterval(sampler);
      }
      const s = fleet.status();
      return { agents: n, moved: s.down, backS, presenceS: null, back: s.back, connectErrors: s.connectErrors - errors0, statuses: null, verification: null, progress };
    } finally {
      await fleet.stop();
    }
  } finally {
    await lb?.dispose();
    await b.dispose().catch(() => undefined);
    await a.dispose();
  }
}

export const failover: Scenario = {
  name: 'failover',
  title: '13. Failover: one of two nodes behind HAProxy killed with output flowing',
  async run(ctx): Promise<ScenarioResult> {
    const t0 = Date.now();
    const n = ctx.n ?? (ctx.size === 'large' ? 5_000 : 200);
    // Every script must still run when the node dies: at 5,000 agents the last dispatches landed
    // after the first 90-line scripts had ended. A line a second, so lines = seconds.
    const lines = Math.max(ctx.size === 'large' ? 90 : 40, Math.ceil(n / 20));
    const k = await measureKapitan(n, lines, ctx);
    const b = ctx.skipBaseline ? null : await measureBaseline(n, ctx);
    const v = k.verification!;
    const rows: Row[] = [
      { metric: 'agents on the killed node (lost their connection)', kapitan: k.moved, baseline: b?.moved ?? null },
      { metric: 'kill → every one of them back through HAProxy', unit: 's', kapitan: k.backS, baseline: b?.backS ?? null, goal: '≤ 30 s', met: k.back >= k.moved && k.backS <= 30 },
      { metric: 'kill → every machine online on the survivor (database)', unit: 's', kapitan: k.presenceS, baseline: 'n/a', goal: '≤ 30 s', met: k.presenceS !== null && k.presenceS <= 30 },
      { metric: 'agents back 5 s after the kill', unit: '%', kapitan: k.moved ? ((k.progress[4] ?? k.back) / k.moved) * 100 : null, baseline: b?.moved ? ((b.progress[4] ?? b.back) / b.moved) * 100 : null },
      { metric: 'failed connection attempts meanwhile', kapitan: k.connectErrors, baseline: b?.connectErrors ?? null },
      { metric: 'executions succeeded', kapitan: k.statuses?.succeeded ?? 0, baseline: 'n/a', goal: `${n}`, met: (k.statuses?.succeeded ?? 0) === n },
      { metric: 'logs stored exactly as written', kapitan: `${v.identical}/${v.executions}`, baseline: 'n/a', goal: 'all', met: v.identical === v.executions },
      { metric: 'chunks lost', kapitan: v.missingChunks, baseline: 'n/a', goal: '0', met: v.missingChunks === 0 },
      { metric: 'chunks doubled or altered', kapitan: v.extraChunks + v.contentMismatches, baseline: 'n/a', goal: '0', met: v.extraChunks + v.contentMismatches === 0 },
    ];
    return {
      name: 'failover',
      title: this.title,
      size: ctx.size,
      params: { agents: n, linesPerAgent: lines, db: 'mysql', nodes: 2 },
      rows,
      notes: [
        `${n} simulated agents through HAProxy (round robin, health check every 1 s, out at the second failure, failed connections redispatched) to two Kapitan nodes on one MySQL database and one Redis; each runs a script writing ${lines} lines, one a second; node b is SIGKILLed 5 s after all are running. The agents redial with their own backoff (no notice: it is a crash).`,
        'Baseline: the same fleet through the same HAProxy to two bare socket.io relays, one SIGKILLed: the reconnect alone.',
        v.firstProblem ? `First problem found: ${v.firstProblem}` : 'Every stored log was read back and matched what its agent wrote (chunk count, sequence numbers, sha256, lines).',
      ],
      durationS: (Date.now() - t0) / 1000,
      raw: { kapitan: k, baseline: b },
    };
  },
};
