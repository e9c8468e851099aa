/**
 * The baseline: a bare socket.io server with the same version (4.8.3) and
 * the same engine settings as Kapitan's (maxHttpBufferSize, pingInterval,
 * pingTimeout; see server/src/common/io-adapter.ts), relaying the same hops
 * with nothing else: no authentication, no validation, no database, no
 * framework.
 *
 *   /agent  the handshake's `credential` is taken as the machine id and the
 *           socket joins its room; hello, heartbeat, started and finished are
 *           acknowledged at once; `execution:output` is forwarded to the
 *           execution's room on /live, then acknowledged.
 *           Containers: `docker:status` is acknowledged; `containers:snapshot`
 *           parts are gathered and, at the last, the whole list goes to the
 *           project's room as `containers:updated` (snapshot), the way Kapitan
 *           publishes it; `containers:changed` goes there as a patch;
 *           `metrics:sample` is acknowledged and its headline goes there as
 *           `metrics:host` (Kapitan's for a stored sample), and whole to the
 *           machine's metrics room on /live.
 *   /live   `subscribe:execution` joins the execution's room (the ack carries
 *           the first output message if it came before the subscription, the
 *           way Kapitan's ack carries stored history); `subscribe:project`
 *           joins the project's room, where `execution:updated` tells
 *           started/finished.
 *   HTTP    POST /run {machineIds? | all, script} → dispatch to each machine's
 *           room → 201 {runId, executions}; GET /stats; GET /api/health and /api/health/live.
 *
 * Writes the same KAPITAN_BENCH stats lines as the server (same module).
 * Plain JavaScript, so it runs without the TypeScript hook (whose native swc
 * binding would weigh on the baseline's memory).
 * Usage: node bench/workers/relay.cjs <port>
 */
'use strict';
const { randomUUID } = require('node:crypto');
const http = require('node:http');
const { Server } = require('socket.io');
const { LIMITS } = require('@kapitan/shared');
const { startBenchStats } = require('../../../server/dist/common/bench-stats');

const port = Number(process.argv[2] ?? 0);
startBenchStats({ KAPITAN_BENCH: '1', KAPITAN_BENCH_INTERVAL_MS: process.env.KAPITAN_BENCH_INTERVAL_MS });

const PROJECT = 'bench';
const stats = { started: 0, finished: 0, outputMessages: 0, chunks: 0, containerSnapshots: 0, containerChanges: 0, metricsSamples: 0, metricsContainers: 0 };
/** executionId → chunks of its first output message */
const firstOutput = new Map();
const machines = new Set();

const server = http.createServer((req, res) => {
  const reply = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (req.method === 'GET' && (req.url === '/api/health' || req.url === '/api/health/live')) return reply(200, { status: 'ok' });
  if (req.method === 'GET' && req.url === '/stats') return reply(200, { ...stats, machines: machines.size });
  if (req.method === 'POST' && req.url === '/run') {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (d) => (text += d));
    req.on('end', () => {
      const body = JSON.parse(text);
      const targets = body.all ? [...machines] : (body.machineIds ?? []);
      const runId = randomUUID();
      const executions = targets.map((machineId) => ({ id: randomUUID(), machineId, status: 'dispatched' }));
      for (const e of executions) {
        agents.to(`machine:${e.machineId}`).emit('execution:dispatch', {
          executionId: e.id,
          script: body.script,
          args: [],
          env: {},
          cwd: null,
          timeoutSeconds: 3600,
        });
      }
      reply(201, { runId, executions });
    });
    return;
  }
  reply(404, { statusCode: 404, code: 'not_found', message: 'not found' });
});

const io = new Server(server, {
  maxHttpBufferSize: LIMITS.socketMessageMaxBytes,
  pingInterval: 10_000,
  pingTimeout: 20_000,
  cors: { origin: false },
});
const agents = io.of('/agent');
const live = io.of('/live');

agents.on('connection', (socket) => {
  const machineId = String(socket.handshake.auth.credential ?? socket.id);
  machines.add(machineId);
  void socket.join(`machine:${machineId}`);
  socket.on('disconnect', () => machines.delete(machineId));
  socket.on('agent:hello', (_p, ack) => ack({ ok: true, machineId, serverTime: new Date().toISOString() }));
  socket.on('agent:heartbeat', (_p, ack) => ack({ ok: true }));
  socket.on('execution:started', (p, ack) => {
    stats.started++;
    live.to(`project:${PROJECT}`).emit('execution:updated', { projectId: PROJECT, execution: { id: p.executionId, status: 'running' } });
    ack({ ok: true });
  });
  socket.on('execution:output', (p, ack) => {
    stats.outputMessages++;
    stats.chunks += p.chunks.length;
    if (!firstOutput.has(p.executionId)) {
      if (firstOutput.size > 100_000) firstOutput.clear();
      firstOutput.set(p.executionId, p.chunks);
    }
    live.to(`execution:${p.executionId}`).emit('execution:output', p);
    ack({ ok: true, stored: p.chunks.length });
  });
  socket.on('docker:status', (_p, ack) => ack({ ok: true }));
  socket.on('metrics:sample', (p, ack) => {
    stats.metricsSamples++;
    stats.metricsContainers += p.containers.length;
    live.to(`machine-metrics:${machineId}`).emit('metrics:sample', { projectId: PROJECT, machineId, ...p });
    live.to(`project:${PROJECT}`).emit('metrics:host', { projectId: PROJECT, machineId, at: new Date().toISOString(), cpuPercent: p.host.cpuPercent, memoryUsedBytes: p.host.memoryUsedBytes, memoryTotalBytes: p.host.memoryTotalBytes });
    ack({ ok: true });
  });
  let parts = [];
  socket.on('containers:snapshot', (p, ack) => {
    parts.push(...p.containers);
    if (p.last) {
      stats.containerSnapshots++;
      const at = new Date().toISOString();
      live.to(`project:${PROJECT}`).emit('containers:updated', { projectId: PROJECT, machineId, snapshot: true, containers: parts.map((c) => ({ ...c, machineId, updatedAt: at })), removed: [] });
      parts = [];
    }
    ack({ ok: true });
  });
  socket.on('containers:changed', (p, ack) => {
    stats.containerChanges++;
    const at = new Date().toISOString();
    live.to(`project:${PROJECT}`).emit('containers:updated', { projectId: PROJECT, machineId, snapshot: false, containers: p.containers.map((c) => ({ ...c, machineId, updatedAt: at })), removed: p.removed });
    ack({ ok: true });
  });
  socket.on('execution:finished', (p, ack) => {
    stats.finished++;
    live.to(`project:${PROJECT}`).emit('execution:updated', { projectId: PROJECT, execution: { id: p.executionId, status: p.status } });
    ack({ ok: true });
  });
});

live.on('connection', (socket) => {
  socket.on('subscribe:project', (_p, ack) => {
    void socket.join(`project:${PROJECT}`);
    ack({ ok: true });
  });
  socket.on('subscribe:execution', (p, ack) => {
    void socket.join(`execution:${p.executionId}`);
    const chunks = firstOutput.get(p.executionId) ?? [];
    ack({ ok: true, execution: { id: p.executionId }, chunks, nextSeq: chunks.length });
  });
  socket.on('execution:history', (p, ack) => {
    const chunks = firstOutput.get(p.executionId) ?? [];
    ack({ ok: true, execution: { id: p.executionId }, chunks, nextSeq: chunks.length });
  });
  socket.on('unsubscribe:execution', (p, ack) => {
    void socket.leave(`execution:${p.executionId}`);
    if (typeof ack === 'function') ack({ ok: true });
  });
});

server.listen(port, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`relay listening on ${typeof address === 'object' && address ? address.port : port}\n`);
});
const stop = () => {
  void io.close();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
