import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { registerCleanup } from './cleanup';
import { createTestDatabase, makeTempDir, removeDir, type TestDatabase } from './database';
import { SERVER_ENTRY, REPO_ROOT } from './paths';
import { freePort } from './ports';
import { childEnv, spawnProcess, type ManagedProcess, type ProcessExit } from './process';

export interface StartServerOptions {
  /**
   * 'sqlite' (default): embedded SQLite in the data dir. 'mysql': a fresh
   * database on the test MariaDB, dropped after the file. A TestDatabase:
   * that database (several nodes on one database); not dropped by this server.
   */
  database?: 'sqlite' | 'mysql' | TestDatabase;
  /** Extra environment; an undefined value removes a default (e.g. JWT_SECRET). */
  env?: Record<string, string | undefined>;
  /** KAPITAN_DATA_DIR; default a fresh dir under os.tmpdir(), removed after the file. */
  dataDir?: string;
  /** Default: a free port. */
  port?: number;
  /** Deadline for /api/health to answer 200; default 60 s. */
  startTimeoutMs?: number;
  /** Name in logs and artifacts; default `server-<port>`. */
  name?: string;
  /** The script to run; default server/dist/main.js (harness self-tests use a fixture). */
  entry?: string;
}

export interface TestServer {
  /** `http://127.0.0.1:<port>`, no trailing slash. */
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** The DATABASE_URL it runs with; undefined for embedded SQLite. */
  readonly databaseUrl: string | undefined;
  /** The Kapitan environment it was started with (PORT, DATABASE_URL …) plus `env`. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The current child process (a new one after restart()). */
  readonly process: ChildProcess;
  readonly managed: ManagedProcess;
  /** Stops the process (signal, 10 s grace, then SIGKILL); data and database stay. */
  stop(signal?: NodeJS.Signals): Promise<ProcessExit>;
  /** SIGKILL: a crash. Data and database stay. */
  kill(): Promise<ProcessExit>;
  /** Stops it if running, then starts it again on the same port, data dir and database, and waits for health. */
  restart(options?: { env?: Record<string, string | undefined> }): Promise<void>;
  /** Output (stdout and stderr) of every process this server ran, restarts included. */
  logs(): string;
  /** Stops it and removes what it owned (data dir, database). Run by afterAll anyway. */
  dispose(): Promise<void>;
}

/** A JWT_SECRET for several server nodes that must accept each other's tokens. */
export function jwtSecret(): string {
  return randomBytes(32).toString('hex');
}

/**
 * Starts a REAL Kapitan server process on a free port with a fresh data dir,
 * and resolves once GET /api/health answers 200 `{status: 'ok'}`. On early
 * exit or at the deadline it rejects with the tail of the server's output.
 */
export async function startServer(options: StartServerOptions = {}): Promise<TestServer> {
  const entry = options.entry ?? SERVER_ENTRY;
  if (!fs.existsSync(entry)) {
    throw new Error(`startServer: ${entry} does not exist; build first (npm run build, or npm run build -w server)`);
  }
  const owned: (() => Promise<void>)[] = [];
  let database: TestDatabase | undefined;
  if (options.database === 'mysql') {
    database = await createTestDatabase().catch((error: unknown) => {
      throw new Error(`startServer: cannot create a test database (call requireMysql() first to skip or fail clearly): ${error instanceof Error ? error.message : String(error)}`);
    });
    owned.push(database.drop);
  } else if (typeof options.database === 'object') {
    database = options.database;
  }
  let dataDir = options.dataDir;
  if (dataDir === undefined) {
    const dir = await makeTempDir('kapitan-e2e-server-');
    owned.push(() => removeDir(dir));
    dataDir = dir;
  }
  const port = options.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}`;
  const name = options.name ?? `server-${port}`;
  const baseEnv: Record<string, string | undefined> = {
    PORT: String(port),
    KAPITAN_DATA_DIR: dataDir,
    DATABASE_URL: database?.url,
    // No JWT_SECRET: like an embedded install, the server keeps a generated one
    // in its data dir (so it survives restart()). Several nodes on one
    // database must share one: pass env.JWT_SECRET (see jwtSecret()).
    LOG_LEVEL: process.env.KAPITAN_E2E_LOG_LEVEL ?? 'info',
    // Suites sign up as many users as they need (default: by invitation once the first exists).
    KAPITAN_SIGNUP: 'open',
    // Many servers run at once: HTTPS (default 8443) only where a suite asks for it, on a port of its own.
    HTTPS_PORT: 'off',
    ...options.env,
  };
  const startTimeoutMs = options.startTimeoutMs ?? 60_000;

  let managed: ManagedProcess;
  const incarnations: ManagedProcess[] = [];
  const launch = async (extraEnv: Record<string, string | undefined> = {}): Promise<void> => {
    const label = incarnations.length === 0 ? name : `${name}#${incarnations.length + 1}`;
    managed = spawnProcess(label, process.execPath, [entry], {
      env: childEnv({ ...baseEnv, ...extraEnv }),
      cwd: REPO_ROOT,
    });
    incarnations.push(managed);
    await waitForHealth(url, managed, startTimeoutMs);
  };

  let disposed = false;
  const dispose = async (): Promise<void> => {
    if (disposed) return;
    disposed = true;
    unregister();
    for (const p of incarnations) await p.dispose();
    for (const release of owned.reverse()) await release();
  };
  const unregister = registerCleanup(`server ${name}`, dispose);

  try {
    await launch();
  } catch (error) {
    // Release everything, but keep the process known to the failure hook so
    // its whole output lands in e2e/.artifacts/ (the error holds its tail).
    disposed = true;
    unregister();
    await managed!.stop('SIGKILL');
    for (const release of owned.reverse()) await release();
    throw error;
  }

  return {
    url,
    port,
    dataDir,
    databaseUrl: database?.url,
    env: baseEnv,
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
      await launch(restartOptions?.env);
    },
    logs: () => incarnations.map((p) => (incarnations.length > 1 ? `=== ${p.name}\n${p.logs()}` : p.logs())).join('\n'),
    dispose,
  };
}

/** Polls GET `${url}/api/health` until 200 with `status: 'ok'`; fails fast if the process exits. */
async function waitForHealth(url: string, server: ManagedProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  let exited = false;
  void server.exited.then(() => (exited = true));
  while (Date.now() < deadline) {
    if (exited) break;
    try {
      const res = await fetch(`${url}/api/health`, { signal: AbortSignal.timeout(2_000) });
      const text = await res.text();
      if (res.status === 200 && (JSON.parse(text) as { status?: unknown }).status === 'ok') return;
      last = `HTTP ${res.status} ${text.slice(0, 200)}`;
    } catch (error) {
      last = error instanceof Error ? `${error.message}${error.cause instanceof Error ? ` (${error.cause.message})` : ''}` : String(error);
    }
    await Promise.race([new Promise((resolve) => setTimeout(resolve, 100)), server.exited]);
  }
  if (exited || !server.running) {
    const exit = await server.exited;
    throw new Error(
      `${server.name} exited (code ${exit.code}, signal ${exit.signal}) before ${url}/api/health answered 200.\n` +
        `Last output:\n${server.tail(40)}`,
    );
  }
  await server.stop('SIGKILL');
  throw new Error(
    `${server.name}: ${url}/api/health did not answer 200 {status:'ok'} within ${timeoutMs} ms (last: ${last}).\n` +
      `Last output:\n${server.tail(40)}`,
  );
}
