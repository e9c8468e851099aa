/**
 * Simulated agents for the metrics scenario: each connects to /agent (after
 * enrolling over REST when the target is Kapitan), says hello, reports a
 * snapshot of `containers` running containers, then sends a metrics sample
 * (host + every container) every `intervalMs`, the agents spread evenly
 * over the interval. Counts acks; answers `{type:'stats'}` over IPC.
 * Plain JavaScript and plain socket.io-client, so the worker itself weighs
 * little on the shared cores.
 *
 * Usage (forked): node metrics-agents.cjs '<json options>'
 *   { url, mode: 'kapitan'|'baseline', token?, count, intervalMs, containers }
 */
'use strict';
const { randomUUID } = require('node:crypto');
const { io } = require('socket.io-client');

const o = JSON.parse(process.argv[2]);
const stats = { connected: 0, sent: 0, acked: 0, failed: 0, lastError: null };
const sockets = [];
const timers = [];
let stopping = false;

const facts = (i) => ({
  hostname: `sim-metrics-${i}`,
  os: 'Simulated',
  platform: 'linux',
  kernel: '6.0',
  arch: 'x64',
  cpus: 4,
  memoryBytes: 8 * 1024 ** 3,
  agentVersion: 'bench',
  dockerAvailable: true,
});
const hex64 = () => (randomUUID() + randomUUID()).replace(/-/g, '').slice(0, 64);
const container = (id, i) => ({
  id,
  name: `c${i}`,
  image: 'bench/app:1',
  imageId: null,
  state: 'running',
  status: 'Up 1 hour',
  health: 'none',
  ports: [],
  labels: {},
  createdAt: '2026-12-01T00:00:00.000Z',
  startedAt: '2026-12-01T00:00:01.000Z',
  finishedAt: null,
  exitCode: null,
  restartCount: 0,
});
const sample = (ids) => ({
  at: new Date().toISOString(),
  host: {
    cpuPercent: Math.random() * 100,
    memoryUsedBytes: 2 * 1024 ** 3 + Math.floor(Math.random() * 1024 ** 3),
    memoryTotalBytes: 8 * 1024 ** 3,
    diskRootUsedBytes: 20 * 1024 ** 3,
    diskRootTotalBytes: 100 * 1024 ** 3,
    diskStateUsedBytes: 20 * 1024 ** 3,
    diskStateTotalBytes: 100 * 1024 ** 3,
    netRxBytesPerSec: Math.random() * 1e6,
    netTxBytesPerSec: Math.random() * 1e6,
    load1: Math.random() * 4,
    load5: 1,
    load15: 1,
  },
  containers: ids.map((containerId) => ({ containerId, cpuPercent: Math.random() * 50, memoryUsedBytes: Math.floor(Math.random() * 5e8), memoryLimitBytes: null })),
});

async function enrol(i) {
  if (o.mode !== 'kapitan') return randomUUID();
  for (let attempt = 0; ; attempt++) {
    const r = await fetch(`${o.url}/api/agent/enrol`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: o.token, facts: facts(i) }) });
    if (r.ok) return (await r.json()).credential;
    if (attempt > 20) throw new Error(`enrol ${i}: ${r.status} ${await r.text()}`);
    await new Promise((res) => setTimeout(res, 200 * (attempt + 1)));
  }
}

function ask(socket, event, payload) {
  return socket.timeout(30_000).emitWithAck(event, payload);
}

async function start(i) {
  const credential = await enrol(i);
  const socket = io(`${o.url}/agent`, { auth: { credential }, transports: ['websocket'], reconnection: false });
  sockets.push(socket);
  await new Promise((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  const hello = await ask(socket, 'agent:hello', { facts: facts(i), activeExecutionIds: [] });
  if (!hello.ok) throw new Error(`hello ${i}: ${JSON.stringify(hello)}`);
  const ids = Array.from({ length: o.containers }, hex64);
  const snap = await ask(socket, 'containers:snapshot', { snapshotId: randomUUID(), containers: ids.map(container), last: true });
  if (!snap.ok) throw new Error(`snapshot ${i}: ${JSON.stringify(snap)}`);
  stats.connected++;
  return { socket, ids };
}

function loop(agent, offsetMs) {
  const tick = () => {
    if (stopping) return;
    stats.sent++;
    ask(agent.socket, 'metrics:sample', sample(agent.ids)).then(
      (ack) => {
        if (ack && ack.ok) stats.acked++;
        else {
          stats.failed++;
          stats.lastError = JSON.stringify(ack).slice(0, 300);
        }
      },
      (err) => {
        stats.failed++;
        stats.lastError = String(err);
      },
    );
  };
  timers.push(
    setTimeout(() => {
      tick();
      timers.push(setInterval(tick, o.intervalMs));
    }, offsetMs),
  );
}

async function main() {
  const agents = [];
  const queue = Array.from({ length: o.count }, (_, i) => i);
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (queue.length) agents.push(await start(queue.shift()));
    }),
  );
  agents.forEach((a, i) => loop(a, Math.floor((i / agents.length) * o.intervalMs)));
  process.send({ type: 'ready', connected: stats.connected });
}

process.on('message', (m) => {
  if (m.type === 'stats') process.send({ type: 'stats', ...stats });
  if (m.type === 'stop') {
    stopping = true;
    for (const t of timers) clearTimeout(t), clearInterval(t);
    for (const s of sockets) s.disconnect();
    setTimeout(() => process.exit(0), 200);
  }
});
main().catch((err) => {
  process.send({ type: 'error', message: err instanceof Error ? err.stack : String(err) });
  process.exit(1);
});
