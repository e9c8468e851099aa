/**
 * Remote script runs through REAL agent processes against a real server on
 * MySQL: ordering, volume, exit codes, signals, cancel, timeout, argv, fan-out
 * and the offline queue (design invariants 1–2, threat model T17).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Execution, ExecutionStatus } from '@kapitan/shared';
import {
  describeOrSkip,
  requireMysql,
  startAgent,
  startServer,
  waitFor,
  waitForMachineStatus,
  type TestAgent,
  type TestServer,
} from '../harness';
import { setupProject, startOnlineAgent, waitForFinal, type TestProject } from './fixtures';

describeOrSkip(requireMysql())('script runs through real agents (MySQL)', () => {
  let server: TestServer;
  let p: TestProject;
  let agent: TestAgent;
  let tmp: string;

  beforeAll(async () => {
    server = await startServer({ database: 'mysql' });
    p = await setupProject(server.url, 'runs');
    agent = await startOnlineAgent(server.url, p, { env: { KAPITAN_AGENT_KILL_GRACE_MS: '1000' } });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kapitan-runs-'));
  });
  afterAll(async () => {
    await agent?.dispose();
    await server?.dispose();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  async function run(script: string, extra: Partial<Parameters<TestProject['api']['createExecution']>[1]> = {}, machineId = agent.machineId): Promise<string> {
    const r = await p.api.createExecution(p.projectId, { script, targets: { machineIds: [machineId] }, ...extra });
    return r.executions[0].id;
  }

  const finished = (id: string, timeoutMs = 60_000): Promise<Execution> => waitForFinal(p, id, timeoutMs);

  async function status(id: string, want: ExecutionStatus): Promise<void> {
    await waitFor(async () => (await p.api.getExecution(id)).status === want, { timeoutMs: 30_000, intervalMs: 100, message: `execution ${id} ${want}` });
  }

  test('interleaved multi-line stdout and stderr arrive in order, each marked with its stream', async () => {
    const id = await run(['#!/bin/sh', 'for i in 1 2 3 4 5; do', '  echo "out $i"; echo "more out $i"', '  sleep 0.05', '  echo "err $i" >&2', '  sleep 0.05', 'done'].join('\n'));
    const e = await finished(id);
    expect(e).toMatchObject({ status: 'succeeded', exitCode: 0, signal: null });
    const log = await p.api.getExecutionLog(id);
    expect(log.complete).toBe(true);
    expect(log.gaps).toEqual([]);
    expect(log.chunks.map((c) => c.seq)).toEqual(log.chunks.map((_, i) => i));
    const lines = log.chunks.flatMap((c) => c.data.split('\n').filter(Boolean).map((l) => `${c.stream}:${l}`));
    const expected = [1, 2, 3, 4, 5].flatMap((i) => [`stdout:out ${i}`, `stdout:more out ${i}`, `stderr:err ${i}`]);
    expect(lines).toEqual(expected);
  });

  test('20 MB of output arrives byte-identical', async () => {
    const file = path.join(tmp, 'big.txt');
    const id = await run(`#!/bin/sh\nhead -c 15000000 /dev/urandom | base64 | tee ${file}\n`);
    const e = await finished(id, 120_000);
    expect(e.status).toBe('succeeded');
    const written = fs.readFileSync(file);
    expect(written.length).toBeGreaterThan(20_000_000);
    const text = await p.api.getExecutionLogText(id);
    expect(Buffer.byteLength(text)).toBe(written.length);
    expect(createHash('sha256').update(text).digest('hex')).toBe(createHash('sha256').update(written).digest('hex'));
    const first = await p.api.getExecutionLog(id, { limit: 10 });
    expect(first.chunks[0].seq).toBe(0);
    expect(first.gaps).toEqual([]);
  }, 180_000);

  test('exit codes and signals are recorded', async () => {
    const failed = await finished(await run('exit 3'));
    expect(failed).toMatchObject({ status: 'failed', exitCode: 3, signal: null });
    const killed = await finished(await run('#!/bin/sh\nkill -KILL $$\n'));
    expect(killed).toMatchObject({ status: 'failed', exitCode: null, signal: 'SIGKILL' });
    const ok = await finished(await run('true'));
    expect(ok).toMatchObject({ status: 'succeeded', exitCode: 0 });
    expect(ok.durationMs).not.toBeNull();
    const bash = await finished(await run('#!/usr/bin/env bash\necho "${BASH_VERSION:+bash}"'));
    expect(bash.status).toBe('succeeded');
    expect(await p.api.getExecutionLogText(bash.id)).toBe('bash\n');
  });

  test('args reach the script verbatim as argv, never through a shell; env and cwd apply', async () => {
    const args = ['a b', '$(id)', '`id`', 'x;y', 'line1\nline2', "'quoted'", '*', '--', ''];
    const id = await run('#!/bin/sh\nfor a in "$@"; do printf "[%s]\\n" "$a"; done\nprintf "%s|%s\\n" "$GREETING" "$(pwd)"\n', {
      args,
      env: { GREETING: 'hello $(whoami)' },
      cwd: tmp,
    });
    const e = await finished(id);
    expect(e.status).toBe('succeeded');
    expect(await p.api.getExecutionLogText(id)).toBe(args.map((a) => `[${a}]\n`).join('') + `hello $(whoami)|${fs.realpathSync(tmp)}\n`);
  });

  test('cancel stops the whole process group: TERM, then KILL after the grace period', async () => {
    const pidFile = path.join(tmp, 'child.pid');
    const id = await run(`#!/bin/sh\ntrap '' TERM\nsleep 300 &\necho $! > ${pidFile}\necho started\nwhile :; do sleep 0.2; done\n`);
    await status(id, 'running');
    await waitFor(() => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').trim().length > 0, { timeoutMs: 10_000, message: 'child pid file' });
    const child = Number(fs.readFileSync(pidFile, 'utf8'));
    expect((await p.api.request('POST', `/api/executions/${id}/cancel`)).status).toBe(202);
    const e = await finished(id, 30_000);
    expect(e.status).toBe('cancelled');
    expect(e.signal).toBe('SIGKILL'); // the shell ignored TERM; the group was killed
    await waitFor(
      () => {
        try {
          process.kill(child, 0);
          return false;
        } catch {
          return true;
        }
      },
      { timeoutMs: 5000, message: `background child ${child} gone` },
    );
    expect(await p.api.getExecutionLogText(id)).toBe('started\n');
    // Cancelling what is final is a conflict, and changes nothing.
    expect((await p.api.request('POST', `/api/executions/${id}/cancel`)).status).toBe(409);
  });

  test('a script over its timeout ends timed_out', async () => {
    const e = await finished(await run('echo before; sleep 60; echo after', { timeoutSeconds: 1 }), 30_000);
    expect(e.status).toBe('timed_out');
    expect(await p.api.getExecutionLogText(e.id)).toBe('before\n');
  });

  test('a queued execution reaches an offline machine when it returns', async () => {
    await agent.stop('SIGTERM');
    await waitForMachineStatus({ api: p.api, projectId: p.projectId, machineId: agent.machineId, status: 'offline' });
    const id = await run('echo from the queue');
    expect((await p.api.getExecution(id)).status).toBe('queued');
    await agent.restart();
    const e = await finished(id);
    expect(e.status).toBe('succeeded');
    expect(await p.api.getExecutionLogText(id)).toBe('from the queue\n');
  });

  test('queued work expires if the machine stays away', async () => {
    await agent.stop('SIGTERM');
    await waitForMachineStatus({ api: p.api, projectId: p.projectId, machineId: agent.machineId, status: 'offline' });
    const id = await run('echo never', { expiresInSeconds: 1 });
    const e = await finished(id, 30_000);
    expect(e.status).toBe('expired');
    await agent.restart();
    await waitForMachineStatus({ api: p.api, projectId: p.projectId, machineId: agent.machineId, status: 'online' });
    expect((await p.api.getExecution(id)).status).toBe('expired');
    expect((await p.api.getExecutionLog(id)).chunks).toEqual([]);
  });

  test('three agents in parallel: one run, three executions, each with its own output', async () => {
    const token = (await p.api.createEnrolmentToken(p.projectId, { labels: { pool: 'trio' } })).token;
    const agents = await Promise.all([1, 2, 3].map((i) => startAgent({ serverUrl: server.url, token, labels: { n: String(i) } })));
    try {
      for (const a of agents) await waitForMachineStatus({ api: p.api, projectId: p.projectId, machineId: a.machineId, status: 'online' });
      const r = await p.api.createExecution(p.projectId, {
        script: '#!/bin/sh\nfor i in 1 2 3 4 5 6 7 8 9 10; do echo "$KAPITAN_EXECUTION_ID $i"; sleep 0.02; done',
        targets: { labels: { pool: 'trio' } },
      });
      expect(r.executions.map((e) => e.machineId).sort()).toEqual(agents.map((a) => a.machineId).sort());
      for (const x of r.executions) {
        const e = await finished(x.id);
        expect(e.status).toBe('succeeded');
        expect(await p.api.getExecutionLogText(x.id)).toBe([1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((i) => `${x.id} ${i}\n`).join(''));
      }
      const runList = await p.api.request<{ runId: string }[]>('GET', `/api/projects/${p.projectId}/executions`, { query: { runId: r.runId } });
      expect(runList.body).toHaveLength(3);
    } finally {
      await Promise.all(agents.map((a) => a.dispose()));
    }
  });

  test('targets that match nothing, or name a machine of another project, are refused and create nothing', async () => {
    const other = await setupProject(server.url, 'other');
    const before = (await p.api.request<unknown[]>('GET', `/api/projects/${p.projectId}/executions`)).body.length;
    const none = await p.api.request('POST', `/api/projects/${p.projectId}/executions`, { body: { script: 'true', targets: { labels: { nope: 'x' } } } });
    expect(none.status).toBe(400);
    const foreign = await other.api.request('POST', `/api/projects/${other.projectId}/executions`, { body: { script: 'true', targets: { machineIds: [agent.machineId] } } });
    expect(foreign.status).toBe(404);
    const cross = await other.api.request('POST', `/api/projects/${p.projectId}/executions`, { body: { script: 'true', targets: { all: true } } });
    expect(cross.status).toBe(404);
    expect((await p.api.request<unknown[]>('GET', `/api/projects/${p.projectId}/executions`)).body.length).toBe(before);
  });
});
