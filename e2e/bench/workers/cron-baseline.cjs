/**
 * The baseline of the schedules scenario: the same cron expressions in the
 * same zones as croner jobs (the croner Kapitan's schedules compute their
 * slots with, resolved through shared/) in one bare process, each job's
 * callback dispatching `execution:dispatch` over socket.io to its target
 * machines — the simulated agents of the scenario, which speak to this
 * process as they do to workers/relay.cjs: the credential is taken as the
 * machine id, hello, heartbeat, started, output and finished are
 * acknowledged at once. No database, no claim, no second node: one process
 * that cannot fire a slot twice because nothing else fires it.
 *
 * Each firing is recorded as { schedule, slotMs, firedMs, executions }: the
 * slot is the croner slot the callback stands for (the latest one not after
 * the callback), firedMs the wall clock (Date.now()) on entering it.
 *
 *   POST /schedules [{ id, cron, timezone, machineIds, script }]  → 201, jobs started
 *   GET  /fired     every firing so far
 *   POST /stop      stops every job
 *
 * Plain JavaScript, like relay.cjs, so it runs without the TypeScript hook.
 * Usage: node bench/workers/cron-baseline.cjs <port>
 */
'use strict';
const { randomUUID } = require('node:crypto');
const http = require('node:http');
const { createRequire } = require('node:module');
const path = require('node:path');
const { Server } = require('socket.io');
const { LIMITS } = require('@kapitan/shared');
const { Cron } = createRequire(path.join(__dirname, '../../../shared/package.json'))('croner');

const port = Number(process.argv[2] ?? 0);
const jobs = [];
const fired = [];

function startJobs(list) {
  for (const s of list) {
    const job = new Cron(s.cron, { timezone: s.timezone, mode: 'auto' }, (self) => {
      // Date.now(), not the monotonic clock: croner decides a slot is due by it, and Kapitan's firedAt is one too.
      const firedMs = Date.now();
      // Slots are whole seconds; +1 makes a callback that runs on its exact millisecond stand for that slot.
      const slot = self.previousRuns(1, new Date(firedMs + 1))[0];
      const executions = s.machineIds.map((machineId) => {
        const executionId = randomUUID();
        agents.to(`machine:${machineId}`).emit('execution:dispatch', { executionId, script: s.script, args: [], env: {}, cwd: null, timeoutSeconds: 3600 });
        return executionId;
      });
      fired.push({ schedule: s.id, slotMs: slot ? slot.getTime() : NaN, firedMs, executions });
    });
    jobs.push(job);
  }
}

const server = http.createServer((req, res) => {
  const reply = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (req.method === 'GET' && req.url === '/api/health') return reply(200, { status: 'ok' });
  if (req.method === 'GET' && req.url === '/fired') return reply(200, fired);
  if (req.method === 'POST' && req.url === '/stop') {
    for (const j of jobs.splice(0)) j.stop();
    return reply(200, { ok: true });
  }
  if (req.method === 'POST' && req.url === '/schedules') {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (d) => (text += d));
    req.on('end', () => {
      try {
        startJobs(JSON.parse(text));
        reply(201, { jobs: jobs.length });
      } catch (err) {
        reply(400, { message: String(err) });
      }
    });
    return;
  }
  reply(404, { message: 'not found' });
});

const io = new Server(server, { maxHttpBufferSize: LIMITS.socketMessageMaxBytes, pingInterval: 10_000, pingTimeout: 20_000, cors: { origin: false } });
const agents = io.of('/agent');
agents.on('connection', (socket) => {
  const machineId = String(socket.handshake.auth.credential ?? socket.id);
  void socket.join(`machine:${machineId}`);
  socket.on('agent:hello', (_p, ack) => ack({ ok: true, machineId, serverTime: new Date().toISOString() }));
  socket.on('agent:heartbeat', (_p, ack) => ack({ ok: true }));
  socket.on('docker:status', (_p, ack) => ack({ ok: true }));
  socket.on('execution:started', (_p, ack) => ack({ ok: true }));
  socket.on('execution:output', (p, ack) => ack({ ok: true, stored: p.chunks.length }));
  socket.on('execution:finished', (_p, ack) => ack({ ok: true }));
});

server.listen(port, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`cron baseline listening on ${typeof address === 'object' && address ? address.port : port}\n`);
});
const stop = () => {
  for (const j of jobs) j.stop();
  void io.close();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
