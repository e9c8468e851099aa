/**
 * 14. Schedules: S schedules (small 100, large 1,000; `--n`), each a
 * six-field cron firing every P seconds (small 5, large 10), their offsets
 * spread over the P seconds (`o-59/P * * * * *`, o = i mod P) and their
 * zones over five IANA zones, each targeting one simulated agent (every
 * seventh: three). Over a window (small 20 s, large 60 s) every slot is
 * looked up in the database: its occurrence row, when it fired (the
 * transaction that creates its executions), its executions, and when each
 * agent started its script (agent clock, same host). Exactly once: every
 * slot of the window has one occurrence with exactly its executions, none
 * doubled, none missing. Then the same on two server nodes on one MariaDB
 * and one Redis (both fire every slot they see; the unique occurrence row
 * lets one through). Baseline: the same croner jobs, same expressions and
 * zones, in one bare process (workers/cron-baseline.cjs) whose callback
 * dispatches to the same simulated agents over socket.io.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { jwtSecret, redisUrl, startServer, type TestServer } from '../../src/harness';
import { REPO_ROOT } from '../../src/harness/paths';
import { freePort } from '../../src/harness/ports';
import { childEnv, spawnProcess, type ManagedProcess } from '../../src/harness/process';
import { Fleet, type Machine } from '../lib/fleet';
import { benchScript } from '../lib/output';
import { ProcSampler } from '../lib/proc';
import type { Row, ScenarioResult } from '../lib/report';
import { idleStats, KapitanServer } from '../lib/servers';
import { sleep, summarize, type Summary } from '../lib/stats';
import { MiB, type BenchContext, type Scenario } from '../lib/context';

/** Zones the schedules are spread over: a seconds field fires at the same instants in each (whole-minute offsets), which the slot check relies on. */
const ZONES = ['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Australia/Adelaide'];
/** One line, at once: a scheduled `echo`. */
const SCRIPT = benchScript({ lines: 1, lineBytes: 40, linesPerTick: 1, tickMs: 0 });
/** After the window: how long its last slots may take to fire and start before they count as missing. */
const SETTLE_MS = 40_000;

interface SchedulePlan {
  index: number;
  offsetS: number;
  cron: string;
  timezone: string;
  /** Indexes into the fleet's machines. */
  machines: number[];
}

interface Plan {
  periodS: number;
  windowS: number;
  agents: number;
  schedules: SchedulePlan[];
}

/** A slot as one side recorded it: Kapitan's occurrence row, the baseline's callback. */
interface Firing {
  schedule: number;
  slotMs: number;
  /** Executions created (Kapitan: occurrence firedAt; baseline: callback entered); null: claimed, never fired. */
  firedMs: number | null;
  skipped: boolean;
  executions: { id: string; createdMs: number }[];
}

interface Analysis {
  expected: number;
  /** Slots with one occurrence that created exactly its executions. */
  exact: number;
  /** Extra occurrences of a slot, occurrences at a time that is no slot, occurrences with more executions than targets, runs belonging to no occurrence. */
  doubled: number;
  /** Slots with no occurrence, a skipped one, or fewer executions than targets. */
  missing: number;
  skipped: number;
  expectedExecutions: number;
  started: number;
  fired: Summary;
  created: Summary;
  start: Summary;
  firstProblem?: string;
}

interface Outcome {
  analysis: Analysis;
  /** CPU of the server process(es) over the window, summed (100 = one core). */
  cpuPercent: number;
  lagP99Ms: number | null;
  /** Occurrences (of any slot) fired per second during the window: below S/P, firing falls behind. */
  firedPerSecond: number;
  createMs: number;
}

function periodFromEnv(fallback: number): number {
  const raw = process.env.KAPITAN_BENCH_SCHEDULES_PERIOD_S;
  if (raw === undefined || raw === '') return fallback;
  const p = Number(raw);
  if (!Number.isInteger(p) || p < 2 || 60 % p !== 0) throw new Error(`KAPITAN_BENCH_SCHEDULES_PERIOD_S must be a whole number of seconds ≥ 2 dividing 60, not ${raw}`);
  return p;
}

function makePlan(ctx: BenchContext): Plan {
  const large = ctx.size === 'large';
  const count = ctx.n ?? (large ? 1_000 : 100);
  const periodS = periodFromEnv(large ? 10 : 5);
  const windowS = large ? 60 : 20;
  const agents = Math.min(count, large ? 100 : 20);
  const schedules: SchedulePlan[] = [];
  for (let i = 0; i < count; i++) {
    const offsetS = i % periodS;
    const first = i % agents;
    const targets = i % 7 === 6 ? Math.min(3, agents) : 1;
    schedules.push({
      index: i,
      offsetS,
      cron: `${offsetS}-59/${periodS} * * * * *`,
      timezone: ZONES[Math.floor(i / periodS) % ZONES.length]!,
      machines: Array.from({ length: targets }, (_, k) => (first + k) % agents),
    });
  }
  return { periodS, windowS, agents, schedules };
}

/**
 * The window's slots of a schedule, by arithmetic rather than by croner:
 * the window starts on a multiple of P seconds (epoch), P divides 60, so the
 * seconds field `o-59/P` fires exactly at window start + o + k·P.
 */
function slotsOf(s: SchedulePlan, plan: Plan, w0: number): number[] {
  const out: number[] = [];
  for (let t = w0 + s.offsetS * 1000; t < w0 + plan.windowS * 1000; t += plan.periodS * 1000) out.push(t);
  return out;
}

function analyse(plan: Plan, firings: Firing[], orphanRuns: number, starts: Map<string, number>, w0: number, w1: number): Analysis {
  const a: Analysis = {
    expected: 0,
    exact: 0,
    doubled: orphanRuns,
    missing: 0,
    skipped: 0,
    expectedExecutions: 0,
    started: 0,
    fired: summarize([]),
    created: summarize([]),
    start: summarize([]),
  };
  if (orphanRuns) a.firstProblem = `${orphanRuns} run(s) of executions that belong to no occurrence of a slot`;
  const bySlot = new Map<string, Firing[]>();
  for (const f of firings) {
    if (f.slotMs < w0 || f.slotMs >= w1) continue;
    const key = `${f.schedule}:${f.slotMs}`;
    bySlot.set(key, [...(bySlot.get(key) ?? []), f]);
  }
  const expectedKeys = new Set<string>();
  const fired: number[] = [];
  const created: number[] = [];
  const start: number[] = [];
  for (const s of plan.schedules) {
    for (const slot of slotsOf(s, plan, w0)) {
      const key = `${s.index}:${slot}`;
      expectedKeys.add(key);
      a.expected++;
      a.expectedExecutions += s.machines.length;
      const got = bySlot.get(key) ?? [];
      if (got.length > 1) {
        a.doubled += got.length - 1;
        a.firstProblem ??= `schedule ${s.index} slot ${new Date(slot).toISOString()}: ${got.length} occurrences`;
      }
      const f = got[0];
      if (!f) {
        a.missing++;
        a.firstProblem ??= `schedule ${s.index} slot ${new Date(slot).toISOString()}: no occurrence`;
        continue;
      }
      if (f.skipped) a.skipped++;
      if (f.firedMs !== null) fired.push(f.firedMs - slot);
      for (const e of got.flatMap((g) => g.executions)) {
        created.push(e.createdMs - slot);
        const st = starts.get(e.id);
        if (st !== undefined && Number.isFinite(st)) {
          a.started++;
          start.push(st - slot);
        }
      }
      const n = f.executions.length;
      if (f.skipped || n < s.machines.length) {
        a.missing++;
        a.firstProblem ??= `schedule ${s.index} slot ${new Date(slot).toISOString()}: ${f.skipped ? 'skipped' : `${n} of ${s.machines.length} executions`}`;
      } else if (n > s.machines.length) {
        a.doubled++;
        a.firstProblem ??= `schedule ${s.index} slot ${new Date(slot).toISOString()}: ${n} executions for ${s.machines.length} machines`;
      } else if (got.length === 1) a.exact++;
    }
  }
  for (const [key, got] of bySlot) {
    if (expectedKeys.has(key)) continue;
    a.doubled += got.length;
    a.firstProblem ??= `occurrence at ${key}, which is no slot of that schedule`;
  }
  a.fired = summarize(fired);
  a.created = summarize(created);
  a.start = summarize(start);
  return a;
}

async function startsOf(fleets: Fleet[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const { runs } of await Promise.all(fleets.map((f) => f.collect()))) for (const r of runs) out.set(r.executionId, r.startMs);
  return out;
}

/** The first whole multiple of P seconds at least one period (and a second) from now: every schedule has been created and armed by then. */
function windowStart(plan: Plan): number {
  const p = plan.periodS * 1000;
  return Math.ceil((Date.now() + p + 1000) / p) * p;
}

async function untilMs(t: number): Promise<void> {
  const wait = t - Date.now();
  if (wait > 0) await sleep(wait);
}

async function measureKapitan(plan: Plan, nodes: 1 | 2, ctx: BenchContext): Promise<Outcome> {
  const db = nodes === 2 ? 'mysql' : (ctx.db ?? 'mysql');
  const env = nodes === 2 ? { REDIS_URL: redisUrl(), JWT_SECRET: jwtSecret(), KAPITAN_SECRETS_KEY: randomBytes(32).toString('base64'), KAPITAN_NODE_ID: 'bench-a' } : {};
  const label = `kapitan ${nodes === 2 ? '2 nodes' : db}`;
  const a = await KapitanServer.start({ db, env, cpuProfDir: nodes === 1 ? ctx.cpuProfDir : undefined });
  let b: TestServer | undefined;
  const fleets: Fleet[] = [];
  try {
    if (nodes === 2) {
      b = await startServer({
        database: { kind: 'mysql', name: 'shared', url: a.server.databaseUrl!, drop: async () => undefined },
        name: 'kapitan-b',
        env: { ...env, KAPITAN_NODE_ID: 'bench-b', KAPITAN_BENCH: '0', LOG_LEVEL: process.env.KAPITAN_BENCH_LOG_LEVEL ?? 'warn' },
      });
    }
    const token = await a.enrolmentToken(plan.agents);
    // Two nodes: half the agents on each, so an occurrence fired by one node often runs on a machine the other holds.
    const urls = b ? [a.url, b.url] : [a.url];
    ctx.log(`${label}: enrolling and connecting ${plan.agents} agents`);
    for (const [i, url] of urls.entries()) {
      const count = Math.floor(plan.agents / urls.length) + (i < plan.agents % urls.length ? 1 : 0);
      fleets.push(await Fleet.start({ role: 'kapitan', serverUrl: url, count, token, tuning: { outboxBytes: 1 * MiB }, log: ctx.log }));
    }
    for (const f of fleets) await f.connect(500);
    for (const f of fleets) await f.waitFor((s) => s.ready >= f.machines.length, 5 * 60_000, 'agents ready');
    const machines: Machine[] = fleets.flatMap((f) => f.machines);

    ctx.log(`${label}: creating ${plan.schedules.length} schedules (every ${plan.periodS} s)`);
    const t0 = Date.now();
    const byId = new Map<string, SchedulePlan>();
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < plan.schedules.length) {
          const s = plan.schedules[next++]!;
          const created = await a.api.createSchedule(a.projectId, {
            name: `bench ${s.index}`,
            cron: s.cron,
            timezone: s.timezone,
            script: SCRIPT,
            targets: { machineIds: s.machines.map((m) => machines[m]!.machineId) },
            // Every slot runs whatever the previous one does: the bench measures firing, not the overlap policy.
            overlapPolicy: 'allow',
          });
          byId.set(created.id, s);
        }
      }),
    );
    const createMs = Date.now() - t0;

    const w0 = windowStart(plan);
    const w1 = w0 + plan.windowS * 1000;
    ctx.log(`${label}: window ${new Date(w0).toISOString()} + ${plan.windowS} s`);
    await untilMs(w0);
    const samplers = [new ProcSampler(a.pid, 1000), ...(b ? [new ProcSampler(b.process.pid!, 1000)] : [])];
    await untilMs(w1);
    const cpuPercent = samplers.map((s) => s.stop().cpuPercent).reduce((x, y) => x + y, 0);

    // Until every slot of the window has fired and every one of its executions started (or the deadline).
    const expected = plan.schedules.reduce((n, s) => n + slotsOf(s, plan, w0).length, 0);
    const deadline = w1 + SETTLE_MS;
    for (;;) {
      // Executions first: an execution is created in the transaction that gives its occurrence its runId, so
      // every execution read here has its occurrence in the read that follows.
      const executions = await a.store.executionRows(a.projectId);
      const occurrences = await a.store.occurrenceRows(a.projectId);
      const starts = await startsOf(fleets);
      const inWindow = occurrences.filter((o) => byId.has(o.scheduleId) && o.fireAtMs >= w0 && o.fireAtMs < w1);
      const runIds = new Set(inWindow.map((o) => o.runId));
      const pending = inWindow.filter((o) => o.status === 'firing' || o.status === 'queued').length;
      const notStarted = executions.filter((e) => runIds.has(e.runId) && !Number.isFinite(starts.get(e.id) ?? NaN)).length;
      const settled = inWindow.length >= expected && pending === 0 && notStarted === 0;
      if (settled || Date.now() > deadline) {
        if (!settled) ctx.log(`${label}: at the deadline ${inWindow.length}/${expected} occurrences, ${pending} not fired, ${notStarted} executions not started`);
        const allRuns = new Set(occurrences.map((o) => o.runId).filter((r): r is string => r !== null));
        const orphanRuns = new Set(executions.filter((e) => !allRuns.has(e.runId)).map((e) => e.runId)).size;
        // Read again for the window's own executions: one of its occurrences may have fired between the two reads above.
        const byRun = new Map<string, { id: string; createdMs: number }[]>();
        for (const e of await a.store.executionRows(a.projectId)) {
          if (runIds.has(e.runId)) byRun.set(e.runId, [...(byRun.get(e.runId) ?? []), { id: e.id, createdMs: e.createdMs }]);
        }
        const firings: Firing[] = inWindow.map((o) => ({
          schedule: byId.get(o.scheduleId)!.index,
          slotMs: o.fireAtMs,
          firedMs: o.firedMs,
          skipped: o.status === 'skipped',
          executions: o.runId ? (byRun.get(o.runId) ?? []) : [],
        }));
        const analysis = analyse(plan, firings, orphanRuns, starts, w0, w1);
        const lag = nodes === 1 ? idleStats(a.ticks, w0, w1).lagP99Ms : null;
        const firedPerSecond = occurrences.filter((o) => byId.has(o.scheduleId) && o.firedMs !== null && o.firedMs >= w0 && o.firedMs < w1).length / plan.windowS;
        return { analysis, cpuPercent, lagP99Ms: lag, firedPerSecond, createMs };
      }
      await sleep(2000);
    }
  } finally {
    for (const f of fleets) await f.stop();
    await b?.dispose();
    await a.dispose();
  }
}

interface BaselineFiring {
  schedule: string;
  slotMs: number | null;
  firedMs: number;
  executions: string[];
}

async function measureBaseline(plan: Plan, ctx: BenchContext): Promise<Outcome> {
  const port = await freePort();
  const proc: ManagedProcess = spawnProcess('cron-baseline', process.execPath, [path.join(__dirname, '../workers/cron-baseline.cjs'), String(port)], { env: childEnv({}), cwd: REPO_ROOT });
  let fleet: Fleet | undefined;
  try {
    await proc.waitForLine(/cron baseline listening/, 30_000);
    const url = `http://127.0.0.1:${port}`;
    ctx.log(`baseline: connecting ${plan.agents} agents to the bare croner process`);
    fleet = await Fleet.start({ role: 'baseline', serverUrl: url, count: plan.agents, tuning: { outboxBytes: 1 * MiB }, log: ctx.log });
    await fleet.connect(500);
    await fleet.waitFor((s) => s.ready >= plan.agents, 5 * 60_000, 'agents ready');
    const machines = fleet.machines;
    const t0 = Date.now();
    const res = await fetch(`${url}/schedules`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(plan.schedules.map((s) => ({ id: String(s.index), cron: s.cron, timezone: s.timezone, machineIds: s.machines.map((m) => machines[m]!.machineId), script: SCRIPT }))),
    });
    if (res.status !== 201) throw new Error(`cron baseline /schedules: HTTP ${res.status} ${await res.text()}`);
    const createMs = Date.now() - t0;

    const w0 = windowStart(plan);
    const w1 = w0 + plan.windowS * 1000;
    await untilMs(w0);
    const sampler = new ProcSampler(proc.pid!, 1000);
    await untilMs(w1);
    const cpuPercent = sampler.stop().cpuPercent;

    const expected = plan.schedules.reduce((n, s) => n + slotsOf(s, plan, w0).length, 0);
    const deadline = w1 + SETTLE_MS;
    for (;;) {
      const all = (await (await fetch(`${url}/fired`)).json()) as BaselineFiring[];
      const starts = await startsOf([fleet]);
      const inWindow = all.filter((f) => f.slotMs !== null && f.slotMs >= w0 && f.slotMs < w1);
      const notStarted = inWindow.flatMap((f) => f.executions).filter((id) => !Number.isFinite(starts.get(id) ?? NaN)).length;
      const settled = inWindow.length >= expected && notStarted === 0;
      if (settled || Date.now() > deadline) {
        if (!settled) ctx.log(`baseline: at the deadline ${inWindow.length}/${expected} firings, ${notStarted} executions not started`);
        // A firing whose slot croner could not name is a slot nobody can account for: it counts as doubled.
        const unnamed = all.filter((f) => f.slotMs === null && f.firedMs >= w0 && f.firedMs < w1).length;
        const firings: Firing[] = inWindow.map((f) => ({
          schedule: Number(f.schedule),
          slotMs: f.slotMs!,
          firedMs: f.firedMs,
          skipped: false,
          executions: f.executions.map((id) => ({ id, createdMs: f.firedMs })),
        }));
        await fetch(`${url}/stop`, { method: 'POST' });
        const firedPerSecond = all.filter((f) => f.firedMs >= w0 && f.firedMs < w1).length / plan.windowS;
        return { analysis: analyse(plan, firings, unnamed, starts, w0, w1), cpuPercent, lagP99Ms: null, firedPerSecond, createMs };
      }
      await sleep(2000);
    }
  } finally {
    await fleet?.stop();
    await proc.dispose();
  }
}

function rows(prefix: string, plan: Plan, k: Outcome, b: Outcome | null): Row[] {
  const ka = k.analysis;
  const ba = b?.analysis;
  const due = plan.schedules.length / plan.periodS;
  return [
    { metric: `${prefix}occurrences fired per second in the window (due: ${due.toLocaleString('en-US')})`, unit: '/s', kapitan: k.firedPerSecond, baseline: b?.firedPerSecond ?? null },
    { metric: `${prefix}slot → occurrence fired (executions created) p50`, unit: 'ms', kapitan: ka.fired.p50, baseline: ba?.fired.p50 ?? null },
    { metric: `${prefix}slot → occurrence fired p99`, unit: 'ms', kapitan: ka.fired.p99, baseline: ba?.fired.p99 ?? null, goal: 'p99 ≤ 1,000 ms', met: ka.fired.count > 0 && ka.fired.p99 <= 1000 },
    { metric: `${prefix}slot → occurrence fired max`, unit: 'ms', kapitan: ka.fired.max, baseline: ba?.fired.max ?? null },
    { metric: `${prefix}slot → execution row created p99`, unit: 'ms', kapitan: ka.created.p99, baseline: ba?.created.p99 ?? null },
    { metric: `${prefix}slot → agent starts the script p50`, unit: 'ms', kapitan: ka.start.p50, baseline: ba?.start.p50 ?? null },
    { metric: `${prefix}slot → agent starts the script p99`, unit: 'ms', kapitan: ka.start.p99, baseline: ba?.start.p99 ?? null },
    { metric: `${prefix}occurrences expected (slots in the window)`, kapitan: ka.expected, baseline: ba?.expected ?? null },
    { metric: `${prefix}occurrences fired once with exactly their executions`, kapitan: ka.exact, baseline: ba?.exact ?? null, goal: ka.expected.toLocaleString('en-US'), met: ka.exact === ka.expected },
    { metric: `${prefix}occurrences doubled`, kapitan: ka.doubled, baseline: ba?.doubled ?? null, goal: '0', met: ka.doubled === 0 },
    { metric: `${prefix}occurrences missing (none, skipped or executions short)`, kapitan: ka.missing, baseline: ba?.missing ?? null, goal: '0', met: ka.missing === 0 },
    { metric: `${prefix}executions started on their agents`, kapitan: ka.started, baseline: ba?.started ?? null, goal: ka.expectedExecutions.toLocaleString('en-US'), met: ka.started === ka.expectedExecutions },
    { metric: `${prefix}server CPU over the window`, unit: '%', kapitan: k.cpuPercent, baseline: b?.cpuPercent ?? null },
  ];
}

export const schedules: Scenario = {
  name: 'schedules',
  title: '15. Schedules: each slot fires once, on time, on one node and on two',
  async run(ctx): Promise<ScenarioResult> {
    const t0 = Date.now();
    const plan = makePlan(ctx);
    const db = ctx.db ?? 'mysql';
    const one = await measureKapitan(plan, 1, ctx);
    // Two nodes need a database both reach: MariaDB (SQLite is one node's file).
    const two = db === 'mysql' ? await measureKapitan(plan, 2, ctx) : null;
    const base = ctx.skipBaseline ? null : await measureBaseline(plan, ctx);
    const out: Row[] = [
      ...rows('', plan, one, base),
      { metric: 'server event-loop lag p99 (mean of 1-s windows)', unit: 'ms', kapitan: one.lagP99Ms, baseline: null },
      ...(two ? rows('2 nodes: ', plan, two, null) : []),
    ];
    const problems = [
      ['1 node', one.analysis.firstProblem],
      ['2 nodes', two?.analysis.firstProblem],
      ['baseline', base?.analysis.firstProblem],
    ].filter(([, p]) => p);
    const perSecond = plan.schedules.length / plan.periodS;
    return {
      name: 'schedules',
      title: this.title,
      size: ctx.size,
      params: { schedules: plan.schedules.length, periodS: plan.periodS, windowS: plan.windowS, agents: plan.agents, db, nodes: two ? [1, 2] : [1] },
      rows: out,
      notes: [
        `${plan.schedules.length} schedules, each \`o-59/${plan.periodS} * * * * *\` (o = i mod ${plan.periodS}: ${perSecond.toLocaleString('en-US')} due each second, all at its start) in one of ${ZONES.length} zones, overlap policy allow, each targeting one of ${plan.agents} simulated agents (every seventh: three); the script writes one line. Window ${plan.windowS} s, from a multiple of ${plan.periodS} s at least one period after the last schedule was created; Kapitan on ${db}.`,
        'Each slot of the window is worked out by arithmetic and looked up in the database after the window (occurrence rows, executions by run id): "fired" is the occurrence\'s firedAt (the transaction that creates its executions), "started" the simulated agent\'s clock when its script starts (same host). Doubled counts extra occurrences of a slot, occurrences at no slot, more executions than targets and executions whose run belongs to no occurrence.',
        ...(two ? ['"2 nodes": two server processes on one MariaDB database and one Redis, both firing (no leader), the agents split between them; CPU is both nodes together.'] : db === 'sqlite' ? ['No two-node rows on SQLite (one node\'s file).'] : []),
        'Baseline: the same croner jobs (same expressions, same zones, the croner the server uses) in one bare process, workers/cron-baseline.cjs, whose callback dispatches each execution over socket.io to the same simulated agents; "fired" is entering the callback. It has no database and no second node, so it cannot double a slot: its doubled/missing rows show only that the check itself holds.',
        'CPU is the server process(es) only; MariaDB and the agents run beside them on the same cores.',
        ...problems.map(([who, p]) => `First problem (${who}): ${p}`),
      ],
      durationS: (Date.now() - t0) / 1000,
      raw: { plan: { ...plan, schedules: undefined }, oneNode: one, twoNodes: two, baseline: base },
    };
  },
};
