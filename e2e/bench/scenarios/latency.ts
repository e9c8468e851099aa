/**
 * 2. Command latency with N agents connected: one command at a time to a
 * random agent. t0 = the REST request is sent; then the 201, the agent
 * starting the script (its clock, written into the first line), and that
 * first output chunk at a dashboard socket that subscribes to the execution
 * as soon as the 201 names it (the chunk arrives live, or in the
 * subscription's history if it was there first — whichever the dashboard
 * gets first). The agent's start time comes from its own clock (same host).
 */
import type { Socket } from 'socket.io-client';
import { Fleet, type Machine } from '../lib/fleet';
import { benchScript } from '../lib/output';
import type { Row, ScenarioResult } from '../lib/report';
import { ask, KapitanServer, RelayServer, type BenchServer } from '../lib/servers';
import { nowMs, sleep, summarize, type Summary } from '../lib/stats';
import { MiB, type BenchContext, type Scenario } from '../lib/context';

interface Sample {
  restMs: number;
  startMs: number;
  firstMs: number;
  via: 'live' | 'history' | 'late' | 'missing';
}

interface Level {
  agents: number;
  rest: Summary;
  start: Summary;
  first: Summary;
  liveShare: number;
  late: number;
  /** Commands whose first chunk never reached the dashboard within 32 s. */
  missing: number;
}

type Chunk = { seq: number; data: string };


interface Pending {
  id: string;
  t0: number;
  firstMs: number;
  restMs: number;
  via: Sample['via'];
}

async function commands(server: BenchServer, dash: Socket, machines: Machine[], count: number, warmup: number): Promise<Pending[]> {
  const first = new Map<string, number>();
  const waiters = new Map<string, () => void>();
  dash.on('execution:output', (p: { executionId: string; chunks: Chunk[] }) => {
    if (first.has(p.executionId) || !p.chunks.some((x) => x.seq === 0)) return;
    first.set(p.executionId, nowMs());
    waiters.get(p.executionId)?.();
  });
  const script = benchScript({ lines: 1, lineBytes: 40, linesPerTick: 1, tickMs: 0 });
  const out: Pending[] = [];
  for (let i = 0; i < warmup + count; i++) {
    const m = machines[Math.floor(Math.random() * machines.length)]!;
    const t0 = nowMs();
    const r = await server.run(script, { machineIds: [m.machineId] });
    const t201 = nowMs();
    const id = r.executions[0]!.id;
    const ack = await ask<{ ok: boolean; chunks?: Chunk[] }>(dash, 'subscribe:execution', { executionId: id, fromSeq: 0 });
    const tAck = nowMs();
    let via: Sample['via'] = 'live';
    let at = first.get(id);
    if (at === undefined && ack.chunks?.some((c) => c.seq === 0)) {
      via = 'history';
      at = tAck;
    }
    if (at === undefined) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 2000);
        waiters.set(id, () => {
          clearTimeout(t);
          resolve();
        });
      });
      waiters.delete(id);
      at = first.get(id);
    }
    // Not live within 2 s: forwarded before the subscription and not yet in its history (a real
    // dashboard asks again for the gap), or simply late. Ask the history until it is there (30 s).
    for (let tries = 0; at === undefined && tries < 300; tries++) {
      const h = await ask<{ ok: boolean; chunks?: Chunk[] }>(dash, 'execution:history', { executionId: id, fromSeq: 0 });
      if (h.chunks?.some((x) => x.seq === 0)) {
        at = nowMs();
        via = 'late';
      } else await sleep(100);
      at ??= first.get(id);
    }
    dash.emit('unsubscribe:execution', { executionId: id });
    if (i >= warmup) out.push({ id, t0, restMs: t201 - t0, firstMs: at === undefined ? NaN : at - t0, via: at === undefined ? 'missing' : via });
    first.delete(id);
  }
  dash.off('execution:output');
  return out;
}

async function measure(kind: 'kapitan' | 'baseline', levels: number[], count: number, warmup: number, ctx: BenchContext): Promise<Level[]> {
  const server: BenchServer = kind === 'kapitan' ? await KapitanServer.start({ db: ctx.db ?? 'mysql', cpuProfDir: ctx.cpuProfDir }) : await RelayServer.start();
  const fleets: Fleet[] = [];
  const out: Level[] = [];
  try {
    const dash = await server.dashboard();
    let have = 0;
    for (const n of levels) {
      const add = n - have;
      const token = server instanceof KapitanServer ? await server.enrolmentToken(add) : undefined;
      ctx.log(`${kind}: adding ${add} agents (${n} in all)`);
      const fleet = await Fleet.start({ role: kind, serverUrl: server.url, count: add, token, tuning: { outboxBytes: 1 * MiB }, log: ctx.log });
      // Baseline machine ids are derived from the index: keep them unique across fleets.
      if (kind === 'baseline' && have > 0) throw new Error('baseline levels must be measured with separate relays');
      fleets.push(fleet);
      await fleet.connect(2000);
      await fleet.waitFor((s) => s.ready >= add, 10 * 60_000, `${add} agents ready`);
      have = n;
      await sleep(3000);
      const machines = fleets.flatMap((f) => f.machines);
      ctx.log(`${kind}: ${count} commands with ${n} agents connected`);
      const pending = await commands(server, dash, machines, count, warmup);
      const { runs } = await Promise.all(fleets.map((f) => f.collect())).then((all) => ({ runs: all.flatMap((a) => a.runs) }));
      const started = new Map(runs.map((r) => [r.executionId, r.startMs]));
      const samples: Sample[] = pending.map((p) => ({ restMs: p.restMs, startMs: (started.get(p.id) ?? NaN) - p.t0, firstMs: p.firstMs, via: p.via }));
      for (const f of fleets) await f.forget();
      out.push({
        agents: n,
        rest: summarize(samples.map((s) => s.restMs)),
        start: summarize(samples.map((s) => s.startMs)),
        first: summarize(samples.map((s) => s.firstMs)),
        liveShare: samples.filter((s) => s.via === 'live').length / samples.length,
        late: samples.filter((s) => s.via === 'late').length,
        missing: samples.filter((s) => s.via === 'missing').length,
      });
    }
    dash.disconnect();
  } finally {
    for (const f of fleets) await f.stop();
    await server.dispose();
  }
  return out;
}

export const latency: Scenario = {
  name: 'latency',
  title: '2. Command latency: REST → agent starts → first chunk at a dashboard',
  async run(ctx): Promise<ScenarioResult> {
    const t0 = Date.now();
    const levels = ctx.n ? [ctx.n] : ctx.size === 'large' ? [1_000, 10_000] : [200];
    const count = ctx.size === 'large' ? 1_000 : 100;
    const warmup = ctx.size === 'large' ? 50 : 10;
    const k = await measure('kapitan', levels, count, warmup, ctx);
    const b: Level[] = [];
    if (!ctx.skipBaseline) for (const n of levels) b.push(...(await measure('baseline', [n], count, warmup, ctx)));
    const rows: Row[] = [];
    k.forEach((kl, i) => {
      const bl = b[i];
      const n = kl.agents.toLocaleString('en-US');
      rows.push(
        { metric: `${n} agents: REST → 201 p50`, unit: 'ms', kapitan: kl.rest.p50, baseline: bl?.rest.p50 ?? null },
        { metric: `${n} agents: REST → 201 p99`, unit: 'ms', kapitan: kl.rest.p99, baseline: bl?.rest.p99 ?? null },
        { metric: `${n} agents: REST → script started p50`, unit: 'ms', kapitan: kl.start.p50, baseline: bl?.start.p50 ?? null },
        { metric: `${n} agents: REST → script started p99`, unit: 'ms', kapitan: kl.start.p99, baseline: bl?.start.p99 ?? null },
        { metric: `${n} agents: REST → first chunk at dashboard p50`, unit: 'ms', kapitan: kl.first.p50, baseline: bl?.first.p50 ?? null },
        { metric: `${n} agents: REST → first chunk at dashboard p99`, unit: 'ms', kapitan: kl.first.p99, baseline: bl?.first.p99 ?? null, goal: 'p99 ≤ 50 ms', met: kl.first.p99 <= 50 },
        { metric: `${n} agents: REST → first chunk at dashboard max`, unit: 'ms', kapitan: kl.first.max, baseline: bl?.first.max ?? null },
        { metric: `${n} agents: first chunk came live`, unit: '%', kapitan: kl.liveShare * 100, baseline: bl ? bl.liveShare * 100 : null },
        { metric: `${n} agents: first chunk only from a later history read`, kapitan: kl.late, baseline: bl?.late ?? null },
        { metric: `${n} agents: first chunk never seen (32 s)`, kapitan: kl.missing, baseline: bl?.missing ?? null, goal: '0', met: kl.missing === 0 },
      );
    });
    return {
      name: 'latency',
      title: this.title,
      size: ctx.size,
      params: { agents: levels, commands: count, warmup, db: ctx.db ?? 'mysql' },
      rows,
      notes: [
        `${count} commands per level (after ${warmup} not counted), one at a time, each to a random connected agent; Kapitan on ${ctx.db ?? 'mysql'}.`,
        'The dashboard subscribes once the 201 names the execution; the first chunk counts when it arrives live or in the subscription ack, whichever is first ("came live" is the share that arrived live).',
        'The agent sends output only after the server acknowledged `execution:started` (Kapitan: a database write; the relay: at once). The script writes one line at once (a simulated agent: no process is spawned).',
      ],
      durationS: (Date.now() - t0) / 1000,
      raw: { kapitan: k, baseline: b },
    };
  },
};
