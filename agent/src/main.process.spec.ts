/**
 * The real CLI as separate processes (run from the TypeScript sources through
 * test-support/ts-hooks.cjs): enrol, run, status, SIGKILL mid-run and restart,
 * SIGTERM, and a revoked credential that never gets in.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExecutionDispatch } from '@kapitan/shared';
import { PID_FILE, readState, writeState } from './state';
import { FakeKapitanServer } from './test-support/fake-server';
import { newId, pidAlive, tmpDir, waitFor } from './test-support/wait';

jest.setTimeout(30_000);

const HOOKS = path.join(__dirname, 'test-support', 'ts-hooks.cjs');
const MAIN = path.join(__dirname, 'main.ts');
const TEST_ENV = {
  KAPITAN_AGENT_MAX_BACKOFF_MS: '100',
  KAPITAN_AGENT_HEARTBEAT_MS: '100',
  KAPITAN_AGENT_KILL_GRACE_MS: '500',
  KAPITAN_AGENT_LOG_LEVEL: 'info',
};

let server: FakeKapitanServer;
let dir: string;
const children: ChildProcess[] = [];
const leftovers: number[] = [];

beforeEach(async () => {
  server = await FakeKapitanServer.start();
  dir = path.join(tmpDir(), 'state');
});
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const pid of leftovers.splice(0)) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  await server.close();
  fs.rmSync(path.dirname(dir), { recursive: true, force: true });
});

/** Run a CLI command to its end (asynchronously: the fake server lives in this process). */
async function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--require', HOOKS, MAIN, ...args], {
    env: { ...process.env, ...TEST_ENV },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  return { code, stdout, stderr };
}

interface Running {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startRun(extraEnv: Record<string, string> = {}): Running {
  const child = spawn(process.execPath, ['--require', HOOKS, MAIN, 'run', '--state-dir', dir], {
    env: { ...process.env, ...TEST_ENV, ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  child.stdout!.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, stderr: () => err, exited };
}

const dispatch = (script: string): ExecutionDispatch => ({
  executionId: newId(),
  script,
  args: [],
  env: {},
  cwd: null,
  timeoutSeconds: 600,
});

it('enrols, runs, survives a SIGKILL mid-run (reported lost after restart), and stops on SIGTERM', async () => {
  server.enrolTokens.set('tok', newId());
  const enrol = await cli(['enrol', '--server', server.url, '--token', 'tok', '--label', 'env=test', '--state-dir', dir]);
  expect(enrol).toMatchObject({ code: 0 });
  expect(fs.statSync(path.join(dir, 'state.json')).mode & 0o777).toBe(0o600);
  const credential = readState(dir)!.credential;

  const first = startRun();
  await waitFor(() => server.heartbeats >= 2, 'heartbeats of the first run');
  const status = await cli(['status', '--state-dir', dir]);
  expect(status.code).toBe(0);
  expect(status.stdout).toContain(`agent:       running (pid ${first.child.pid})`);

  const d = dispatch('echo started; sleep 300 & wait');
  server.dispatch(d);
  await waitFor(() => server.log(d.executionId).text === 'started\n', 'first output');
  const scriptPid = server.started.get(d.executionId)![0]!.pid!;
  leftovers.push(scriptPid);

  first.child.kill('SIGKILL');
  expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });
  expect(pidAlive(scriptPid)).toBe(true); // orphaned, still running
  expect((await cli(['status', '--state-dir', dir])).stdout).toMatch(/not running \(stale pid file/);

  const second = startRun();
  const fin = await waitFor(() => server.finished.get(d.executionId)?.[0], 'lost report');
  expect(fin).toMatchObject({ status: 'lost', exitCode: null });
  expect(fin.reason).toMatch(new RegExp(`agent restarted while the script was running \\(pid ${scriptPid}\\)`));
  await waitFor(() => !pidAlive(scriptPid), 'orphan killed', 5000);

  // a script running at SIGTERM is terminated; the agent exits 0 and removes its pid file
  const d2 = dispatch('echo $$; sleep 300');
  server.dispatch(d2);
  await waitFor(() => server.log(d2.executionId).text.length > 0, 'second script output');
  const pid2 = Number(server.log(d2.executionId).text);
  leftovers.push(pid2);
  second.child.kill('SIGTERM');
  expect(await second.exited).toEqual({ code: 0, signal: null });
  expect(pidAlive(pid2)).toBe(false);
  expect(fs.existsSync(path.join(dir, PID_FILE))).toBe(false);
  expect((await cli(['status', '--state-dir', dir])).stdout).toMatch(/agent:\s+not running\n/);

  // and the next start reports it lost
  const third = startRun();
  const fin2 = await waitFor(() => server.finished.get(d2.executionId)?.[0], 'lost report of the script stopped with the agent');
  expect(fin2.status).toBe('lost');
  third.child.kill('SIGTERM');
  expect((await third.exited).code).toBe(0);

  for (const log of [first.stderr(), second.stderr(), third.stderr()]) {
    expect(log).not.toContain(credential);
    for (const line of log.trim().split('\n')) expect(() => JSON.parse(line)).not.toThrow();
  }
});

it('a revoked credential never gets in: the agent keeps retrying with backoff and says why', async () => {
  writeState(dir, {
    version: 1,
    server: server.url,
    machineId: newId(),
    projectId: newId(),
    credential: 'revoked-credential-value',
    enrolledAt: new Date().toISOString(),
    labels: {},
  });
  const run = startRun();
  await waitFor(() => server.handshakes >= 4, 'several refused handshakes');
  expect(server.hellos).toHaveLength(0);
  expect(run.child.exitCode).toBeNull(); // still running, still out
  const lines = run
    .stderr()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { level: string; msg: string });
  expect(lines.some((l) => l.level === 'error' && /refused this machine credential \(revoked or invalid\)/.test(l.msg))).toBe(true);
  expect(run.stderr()).not.toContain('revoked-credential-value');
  run.child.kill('SIGTERM');
  expect((await run.exited).code).toBe(0);
});
