/**
 * 6. The agent's footprint: one real `kapitan-agent run` process (agent/dist,
 * enrolled on a Kapitan server with the embedded SQLite), idle, then running
 * a chatty script (5,000 lines a second): its RSS and CPU from /proc. The
 * baseline is a bare Node process connected to the relay that spawns the
 * same script and forwards each read of its output (workers/bare-agent.cjs).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { isFinalStatus } from '@kapitan/shared';
import { startAgent, waitForMachineStatus } from '../../src/harness/agent';
import { childEnv, spawnProcess } from '../../src/harness/process';
import { REPO_ROOT } from '../../src/harness/paths';
import { ProcSampler } from '../lib/proc';
import type { Row, ScenarioResult } from '../lib/report';
import { KapitanServer, RelayServer } from '../lib/servers';
import { sleep } from '../lib/stats';
import { MiB, type BenchContext, type Scenario } from '../lib/context';

const LINES_PER_TENTH = 500;

function bunVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'node_modules/@oven/bun-linux-x64/package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

/** The forms clients receive (agent/scripts/bundle.mjs), measured idle beside the tsc build. */
const SHIPPED: { form: string; entry: string; launcher: string[] }[] = [
  { form: 'bundle, this Node (24)', entry: path.join(REPO_ROOT, 'agent/dist/bundle/kapitan-agent.cjs'), launcher: [process.execPath] },
  { form: 'bundle, /usr/bin/node', entry: path.join(REPO_ROOT, 'agent/dist/bundle/kapitan-agent.cjs'), launcher: ['/usr/bin/node'] },
  { form: 'standalone executable (Node SEA)', entry: path.join(REPO_ROOT, 'agent/dist/sea/kapitan-agent'), launcher: [] },
  { form: 'standalone executable (bun build --compile)', entry: path.join(REPO_ROOT, 'agent/dist/bun/kapitan-agent'), launcher: [] },
];

async function shippedIdle(idleS: number, ctx: BenchContext): Promise<{ form: string; rssMean: number; rssMax: number; node: string }[]> {
  const server = await KapitanServer.start({ db: 'sqlite' });
  const out: { form: string; rssMean: number; rssMax: number; node: string }[] = [];
  try {
    for (const f of SHIPPED) {
      if (!fs.existsSync(f.entry) || (f.launcher[0] && !fs.existsSync(f.launcher[0]))) {
        ctx.log(`footprint: ${f.form} not available (${f.entry}), skipped`);
        continue;
      }
      // The SEA is the Node that built it (bundle.mjs injects into process.execPath): this one. Bun names its own version.
      const node = f.launcher[0]
        ? execFileSync(f.launcher[0], ['--version'], { encoding: 'utf8' }).trim()
        : f.entry.includes('/bun/')
          ? `Bun ${bunVersion()}`
          : process.version;
      const agent = await startAgent({ serverUrl: server.url, token: await server.enrolmentToken(1), entry: f.entry, launcher: f.launcher, env: { KAPITAN_AGENT_LOG_LEVEL: 'warn' } });
      await waitForMachineStatus({ api: server.api, projectId: server.projectId, machineId: agent.machineId, status: 'online' });
      await sleep(5000);
      ctx.log(`footprint: ${f.form} idle for ${idleS} s`);
      const s = new ProcSampler(agent.process.pid!, 1000);
      await sleep(idleS * 1000);
      const idle = s.stop();
      out.push({ form: f.form, rssMean: idle.rssMean, rssMax: idle.rssMax, node });
      await agent.dispose();
    }
  } finally {
    await server.dispose();
  }
  return out;
}

function chattyScript(seconds: number): string {
  return [
    '#!/bin/sh',
    `# chatty: ${LINES_PER_TENTH * 10} lines a second for ${seconds} s`,
    'i=0',
    `while [ $i -lt ${seconds * 10} ]; do`,
    `  seq -f "chatty line %.0f: the quick brown fox jumps over the lazy dog, 0123456789" $((i*${LINES_PER_TENTH}+1)) $((i*${LINES_PER_TENTH}+${LINES_PER_TENTH}))`,
    '  sleep 0.1',
    '  i=$((i+1))',
    'done',
    '',
  ].join('\n');
}

interface Outcome {
  idleRssMean: number;
  idleRssMax: number;
  idleCpu: number;
  busyRssMax: number;
  busyCpu: number;
  busySeconds: number;
  linesStored: number | null;
}

async function measure(kind: 'kapitan' | 'baseline', idleS: number, busyS: number, ctx: BenchContext): Promise<Outcome> {
  const expected = busyS * 10 * LINES_PER_TENTH;
  if (kind === 'kapitan') {
    const server = await KapitanServer.start({ db: 'sqlite' });
    try {
      const agent = await startAgent({ serverUrl: server.url, token: await server.enrolmentToken(1), env: { KAPITAN_AGENT_LOG_LEVEL: 'warn' } });
      await waitForMachineStatus({ api: server.api, projectId: server.projectId, machineId: agent.machineId, status: 'online' });
      await sleep(5000);
      ctx.log(`kapitan: real agent idle for ${idleS} s`);
      let s = new ProcSampler(agent.process.pid!, 1000);
      await sleep(idleS * 1000);
      const idle = s.stop();
      ctx.log(`kapitan: chatty script for ${busyS} s`);
      s = new ProcSampler(agent.process.pid!, 250);
      const run = await server.run(chattyScript(busyS), { machineIds: [agent.machineId] });
      const id = run.executions[0]!.id;
      for (let i = 0; ; i++) {
        const e = await server.api.getExecution(id);
        if (isFinalStatus(e.status)) break;
        if (i > (busyS + 120) * 5) throw new Error(`chatty execution not final: ${e.status}`);
        await sleep(200);
      }
      const busy = s.stop();
      const text = await server.api.getExecutionLogText(id);
      const lines = text.split('\n').filter((l) => l.startsWith('chatty line ')).length;
      if (lines !== expected) ctx.log(`kapitan: stored ${lines} lines, expected ${expected}`);
      await agent.dispose();
      return { idleRssMean: idle.rssMean, idleRssMax: idle.rssMax, idleCpu: idle.cpuPercent, busyRssMax: busy.rssMax, busyCpu: busy.cpuPercent, busySeconds: busy.seconds, linesStored: lines };
    } finally {
      await server.dispose();
    }
  }
  const relay = await RelayServer.start();
  try {
    const bare = spawnProcess('bare-agent', process.execPath, [path.join(__dirname, '../workers/bare-agent.cjs'), relay.url, 'bare-0'], {
      env: childEnv({}),
      cwd: REPO_ROOT,
    });
    await bare.waitForLine(/bare agent ready/, 30_000);
    await sleep(5000);
    ctx.log(`baseline: bare agent idle for ${idleS} s`);
    let s = new ProcSampler(bare.pid!, 1000);
    await sleep(idleS * 1000);
    const idle = s.stop();
    s = new ProcSampler(bare.pid!, 250);
    const before = (await relay.relayStats()).finished;
    await relay.run(chattyScript(busyS), { machineIds: ['bare-0'] });
    for (let i = 0; (await relay.relayStats()).finished <= before; i++) {
      if (i > (busyS + 120) * 5) throw new Error('bare agent: chatty script not finished');
      await sleep(200);
    }
    const busy = s.stop();
    await bare.dispose();
    return { idleRssMean: idle.rssMean, idleRssMax: idle.rssMax, idleCpu: idle.cpuPercent, busyRssMax: busy.rssMax, busyCpu: busy.cpuPercent, busySeconds: busy.seconds, linesStored: null };
  } finally {
    await relay.dispose();
  }
}

export const footprint: Scenario = {
  name: 'footprint',
  title: "6. The agent's footprint: one real `kapitan-agent run`",
  async run(ctx): Promise<ScenarioResult> {
    const t0 = Date.now();
    const idleS = ctx.n ?? (ctx.size === 'large' ? 60 : 10);
    const busyS = ctx.size === 'large' ? 30 : 5;
    const k = await measure('kapitan', idleS, busyS, ctx);
    const b = ctx.skipBaseline ? null : await measure('baseline', idleS, busyS, ctx);
    const shipped = await shippedIdle(idleS, ctx);
    const expected = busyS * 10 * LINES_PER_TENTH;
    const rows: Row[] = [
      { metric: `idle ${idleS} s: RSS mean`, unit: 'MiB', kapitan: k.idleRssMean / MiB, baseline: b ? b.idleRssMean / MiB : null, goal: '≤ 50 MB', met: k.idleRssMax <= 50e6 },
      { metric: `idle ${idleS} s: RSS max`, unit: 'MiB', kapitan: k.idleRssMax / MiB, baseline: b ? b.idleRssMax / MiB : null },
      { metric: `idle ${idleS} s: CPU`, unit: '% of a core', kapitan: k.idleCpu, baseline: b?.idleCpu ?? null, goal: '≈ 0 % (< 0.5 %)', met: k.idleCpu < 0.5 },
      { metric: `chatty script (${(LINES_PER_TENTH * 10).toLocaleString('en-US')} lines/s, ${busyS} s): RSS max`, unit: 'MiB', kapitan: k.busyRssMax / MiB, baseline: b ? b.busyRssMax / MiB : null },
      { metric: 'chatty script: agent CPU', unit: '% of a core', kapitan: k.busyCpu, baseline: b?.busyCpu ?? null },
      { metric: 'chatty script: lines stored', kapitan: k.linesStored, baseline: 'n/a', goal: `${expected}`, met: k.linesStored === expected },
      ...shipped.map((x) => ({ metric: `idle ${idleS} s, ${x.form} (${x.node}): RSS mean`, unit: 'MiB', kapitan: x.rssMean / MiB, baseline: b ? b.idleRssMean / MiB : null, goal: '≤ 50 MB', met: x.rssMax <= 50e6 })),
    ];
    return {
      name: 'footprint',
      title: this.title,
      size: ctx.size,
      params: { idleSeconds: idleS, chattySeconds: busyS, linesPerSecond: LINES_PER_TENTH * 10 },
      rows,
      notes: [
        'RSS and CPU of the agent process alone (not of the script), from /proc/<pid>/status and /proc/<pid>/stat; CPU over the whole window (chatty: from the REST request until the execution is final).',
        'MB = 10^6 bytes in the goal, the table shows MiB.',
      ],
      durationS: (Date.now() - t0) / 1000,
      raw: { kapitan: k, baseline: b, shipped },
    };
  },
};
