/**
 * The baseline of the agent's footprint: the least a Node process can do to
 * play the agent's part. One socket.io-client connection (same version,
 * websocket only); on `execution:dispatch` it spawns the script with /bin/sh
 * and emits each read of stdout/stderr as one `execution:output` message
 * (acknowledged, never kept, never resent), then `execution:finished`. No
 * validation, no outbox, no journal, no heartbeats, no reconnect logic.
 *
 * Plain JavaScript: it runs as is, like agent/dist does.
 * Usage: node bench/workers/bare-agent.cjs <serverUrl> <credential>
 */
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { io } = require('socket.io-client');

const [serverUrl, credential] = process.argv.slice(2);
const socket = io(`${serverUrl}/agent`, { transports: ['websocket'], auth: { credential }, forceNew: true });
socket.on('connect', () => {
  socket.emit('agent:hello', { facts: {}, activeExecutionIds: [] }, () => process.stdout.write('bare agent ready\n'));
});
socket.on('execution:dispatch', (d) => {
  const file = path.join(os.tmpdir(), `bare-agent-${process.pid}-${d.executionId}.sh`);
  fs.writeFileSync(file, d.script, { mode: 0o700 });
  const child = spawn('/bin/sh', [file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let seq = 0;
  socket.emit('execution:started', { executionId: d.executionId, startedAt: new Date().toISOString(), pid: child.pid }, () => undefined);
  for (const stream of ['stdout', 'stderr']) {
    child[stream].setEncoding('utf8');
    child[stream].on('data', (data) => {
      socket.emit('execution:output', { executionId: d.executionId, chunks: [{ seq: seq++, stream, data }] }, () => undefined);
    });
  }
  child.on('close', (code) => {
    fs.rmSync(file, { force: true });
    socket.emit('execution:finished', { executionId: d.executionId, status: code === 0 ? 'succeeded' : 'failed', exitCode: code, signal: null, finishedAt: new Date().toISOString(), lastSeq: seq - 1 }, () => undefined);
  });
});
process.on('SIGTERM', () => process.exit(0));
