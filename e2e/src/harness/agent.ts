import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { MachineStatus } from '@kapitan/shared';
import type { ApiClient } from './api';
import { registerCleanup } from './cleanup';
import { makeTempDir, removeDir } from './database';
import { AGENT_ENTRY, REPO_ROOT } from './paths';
import { childEnv, spawnProcess, type ManagedProcess, type ProcessExit } from './process';
import { waitFor } from './wait';

export interface StartAgentOptions {
  serverUrl: string;
  /** A project enrolment token. */
  token: string;
  /** Passed as `--label k=v` at enrolment. */
  labels?: Record<string, string>;
  /** More arguments of `enrol` (`--pin …`, `--ca-file …`, `--proxy …`). */
  enrolArgs?: string[];
  /** Extra environment of both commands; an undefined value removes a default. */
  env?: Record<string, string | undefined>;
  /** Default: a fresh dir under os.tmpdir(), removed after the file. */
  stateDir?: string;
  /** Deadline for `enrol` to finish; default 30 s. */
  enrolTimeoutMs?: number;
  /** Name in logs and artifacts; default `agent-<n>`. */
  name?: string;
  /** The script to run; default agent/dist/main.js (harness self-tests use a fixture). */
  entry?: string;
  /**
   * What runs `entry`: default this Node (`[process.execPath]`); another
   * interpreter such as `['/usr/bin/node']`; `[]` when `entry` is itself an
   * executable (the standalone agent).
   */
  launcher?: string[];
}

export interface TestAgent {
  readonly machineId: string;
  readonly stateDir: string;
  /** The current `run` process (a new one after restart()). */
  readonly process: ChildProcess;
  readonly managed: ManagedProcess;
  /** Stops `run` (signal, 10 s grace, then SIGKILL); the state dir stays. */
  stop(signal?: NodeJS.Signals): Promise<ProcessExit>;
  /** SIGKILL: a crash. */
  kill(): Promise<ProcessExit>;
  /** Stops it if running and runs it again on the same state dir (no new enrolment). */
  restart(options?: { env?: Record<string, string | undefined> }): Promise<void>;
  /** Output of enrol and of every run process. */
  logs(): string;
  /** Stops it and removes the state dir it owned. Run by afterAll anyway. */
  dispose(): Promise<void>;
}

let agentCount = 0;

/**
 * Enrols a REAL agent (`main.js enrol`, to completion) and starts
 * `main.js run` on the same state dir. Resolves once `run` is spawned; use
 * `waitForMachineStatus` to wait until the server sees it online.
 */
export async function startAgent(options: StartAgentOptions): Promise<TestAgent> {
  const entry = options.entry ?? AGENT_ENTRY;
  if (!fs.existsSync(entry)) {
    throw new Error(`startAgent: ${entry} does not exist; build first (npm run build, or npm run build -w agent)`);
  }
  const name = options.name ?? `agent-${++agentCount}`;
  const launcher = options.launcher ?? [process.execPath];
  const command = launcher.length ? launcher[0]! : entry;
  const lead = launcher.length ? [...launcher.slice(1), entry] : [];
  let ownedDir: string | undefined;
  let stateDir = options.stateDir;
  if (stateDir === undefined) {
    ownedDir = await makeTempDir('kapitan-e2e-agent-');
    stateDir = ownedDir;
  }
  const baseEnv = {
    // Tests restart servers; reconnect within seconds, not minutes.
    KAPITAN_AGENT_MAX_BACKOFF_MS: '2000',
    ...options.env,
  };
  const processes: ManagedProcess[] = [];
  let disposed = false;
  const dispose = async (): Promise<void> => {
    if (disposed) return;
    disposed = true;
    unregister();
    for (const p of processes) await p.dispose();
    if (ownedDir) await removeDir(ownedDir);
  };
  const unregister = registerCleanup(`agent ${name}`, dispose);

  let machineId: string;
  try {
    const labelArgs = Object.entries(options.labels ?? {}).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
    const enrol = spawnProcess(
      `${name}-enrol`,
      command,
      [...lead, 'enrol', '--server', options.serverUrl, '--token', options.token, '--state-dir', stateDir, ...labelArgs, ...(options.enrolArgs ?? [])],
      { env: childEnv(baseEnv), cwd: REPO_ROOT },
    );
    processes.push(enrol);
    const timeoutMs = options.enrolTimeoutMs ?? 30_000;
    const exit = await Promise.race([
      enrol.exited,
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), timeoutMs).unref()),
    ]);
    if (exit === undefined) {
      await enrol.kill();
      throw new Error(`${name}: enrol did not finish within ${timeoutMs} ms\n${enrol.tail()}`);
    }
    if (exit.code !== 0) {
      throw new Error(`${name}: enrol failed (code ${exit.code}, signal ${exit.signal})\n${enrol.tail()}`);
    }
    machineId = await findMachineId(enrol.logs(), stateDir, name);
  } catch (error) {
    await dispose();
    throw error;
  }

  let managed!: ManagedProcess;
  const run = (extraEnv: Record<string, string | undefined> = {}): void => {
    const runs = processes.length;
    managed = spawnProcess(runs === 1 ? name : `${name}#${runs}`, command, [...lead, 'run', '--state-dir', stateDir], {
      env: childEnv({ ...baseEnv, ...extraEnv }),
      cwd: REPO_ROOT,
    });
    processes.push(managed);
  };
  run();

  return {
    machineId,
    stateDir,
    get process() {
      return managed.child;
    },
    get managed() {
      return managed;
    },
    stop: (signal) => managed.stop(signal),
    kill: () => managed.kill(),
    restart: async (restartOptions) => {
      await managed.stop();
      run(restartOptions?.env);
    },
    logs: () => processes.map((p) => `=== ${p.name}\n${p.logs()}`).join('\n'),
    dispose,
  };
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

/**
 * The machine id the enrolment produced: from enrol's output (a JSON line
 * with `machineId`, or "machine <uuid>"), else from a JSON file in the state
 * dir holding `machineId`.
 */
async function findMachineId(output: string, stateDir: string, name: string): Promise<string> {
  for (const line of output.split('\n')) {
    const json = line.trim();
    if (json.startsWith('{')) {
      try {
        const id = (JSON.parse(json) as { machineId?: unknown }).machineId;
        if (typeof id === 'string' && UUID.test(id)) return id;
      } catch {
        // not JSON after all
      }
    }
    const labelled = new RegExp(`machine\\s*(?:id)?\\W{0,3}(${UUID.source})`, 'i').exec(line);
    if (labelled) return labelled[1]!;
  }
  for (const file of await fsp.readdir(stateDir, { recursive: true })) {
    if (!file.endsWith('.json')) continue;
    try {
      const id = (JSON.parse(await fsp.readFile(path.join(stateDir, file), 'utf8')) as { machineId?: unknown }).machineId;
      if (typeof id === 'string' && UUID.test(id)) return id;
    } catch {
      // not ours
    }
  }
  throw new Error(
    `${name}: enrol succeeded but its machine id was found neither in its output ` +
      `(expected a JSON line {"machineId": …} or "machine <uuid>") nor in a JSON file of ${stateDir}.\n${output}`,
  );
}

/** Polls GET /api/projects/:projectId/machines/:machineId until its status is `status`. */
export async function waitForMachineStatus(options: {
  api: ApiClient;
  projectId: string;
  machineId: string;
  status: MachineStatus;
  timeoutMs?: number;
}): Promise<void> {
  const { api, projectId, machineId, status } = options;
  await waitFor(
    async () => {
      const res = await api.request('GET', `/api/projects/${projectId}/machines/${machineId}`);
      if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${JSON.stringify(res.body)}`);
      const current = (res.body as { status?: string }).status;
      if (current !== status) throw new Error(`status is ${current}`);
      return true;
    },
    { timeoutMs: options.timeoutMs ?? 30_000, intervalMs: 200, message: `machine ${machineId} ${status}` },
  );
}
