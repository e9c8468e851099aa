/**
 * The two servers a scenario compares, behind one interface: the real
 * Kapitan server (server/dist/main.js via the e2e harness, on MariaDB or the
 * embedded SQLite) and the bare socket.io relay (workers/relay.cjs). Both
 * write KAPITAN_BENCH stats lines (memory, event-loop lag) that are read here.
 */
import path from 'node:path';
import type { Socket } from 'socket.io-client';
import { ApiClient, signupUser, type TestUser } from '../../src/harness/api';
import { freePort } from '../../src/harness/ports';
import { childEnv, spawnProcess, type ManagedProcess } from '../../src/harness/process';
import { startServer, type TestServer } from '../../src/harness/server';
import { connectSocket } from '../../src/harness/sockets';
import { REPO_ROOT } from '../../src/harness/paths';
import { Store } from './store';
import { sleep } from './stats';

export interface BenchStats {
  reason: 'tick' | 'gc';
  at: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  lagP50Ms: number;
  lagP99Ms: number;
  lagMaxMs: number;
  elu: number;
}

export interface RunTargets {
  machineIds?: string[];
  all?: boolean;
}

export interface RestartTimes {
  stopMs: number;
  startMs: number;
  readyMs: number | null;
}

export interface BenchServer {
  readonly kind: 'kapitan' | 'baseline';
  readonly url: string;
  readonly pid: number;
  /** Every stats line since the (last) start. */
  readonly ticks: BenchStats[];
  /** Full GC in the server, then its memory. */
  gcStats(): Promise<BenchStats>;
  /** Start a run; resolves with the 201 body. */
  run(script: string, targets: RunTargets): Promise<{ runId: string; executions: { id: string; machineId: string }[] }>;
  /** A connected dashboard socket (Kapitan: the owner's JWT). */
  dashboard(): Promise<Socket>;
  /**
   * Stops the process (SIGTERM) and starts it again on the same port (and
   * data). `startMs`: until the new process takes connections (the relay's
   * "listening" line; Kapitan's `/api/health/live`, answered once it
   * listens). `readyMs` (Kapitan): until `/api/health` answers 200, which
   * also needs a pooled database connection, so under a storm it trails.
   */
  restart(): Promise<RestartTimes>;
  dispose(): Promise<void>;
}

class StatsReader {
  readonly ticks: BenchStats[] = [];
  private waiters: ((s: BenchStats) => void)[] = [];

  attach(stream: NodeJS.ReadableStream | null): void {
    let partial = '';
    stream?.on('data', (d: string | Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        if (!l.startsWith('{"kapitanBench"')) continue;
        const s = (JSON.parse(l) as { kapitanBench: BenchStats }).kapitanBench;
        this.ticks.push(s);
        if (this.ticks.length > 20_000) this.ticks.splice(0, 10_000);
        if (s.reason === 'gc') for (const w of this.waiters.splice(0)) w(s);
      }
    });
  }

  async gc(pid: number): Promise<BenchStats> {
    const got = new Promise<BenchStats>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no gc stats line within 30 s')), 30_000);
      this.waiters.push((s) => {
        clearTimeout(t);
        resolve(s);
      });
    });
    process.kill(pid, 'SIGWINCH');
    return got;
  }
}

export interface KapitanOptions {
  db: 'mysql' | 'sqlite';
  /** Extra server environment. */
  env?: Record<string, string | undefined>;
  /** Write a V8 CPU profile of the server into this directory (node --cpu-prof). */
  cpuProfDir?: string;
}

/** The real Kapitan server, with an owner, a project and direct read access to its database. */
export class KapitanServer implements BenchServer {
  readonly kind = 'kapitan' as const;
  private readonly stats = new StatsReader();
  owner!: TestUser;
  projectId!: string;
  store!: Store;

  private constructor(readonly server: TestServer) {}

  static async start(options: KapitanOptions): Promise<KapitanServer> {
    const nodeOptions = options.cpuProfDir ? `--cpu-prof --cpu-prof-dir=${options.cpuProfDir}` : undefined;
    const server = await startServer({
      // Another build of the server (e.g. a worktree of an older commit, for before/after numbers).
      entry: process.env.KAPITAN_BENCH_SERVER_ENTRY || undefined,
      database: options.db,
      name: `kapitan-${options.db}`,
      env: {
        KAPITAN_BENCH: '1',
        LOG_LEVEL: process.env.KAPITAN_BENCH_LOG_LEVEL ?? 'warn',
        NODE_OPTIONS: process.env.KAPITAN_BENCH_NODE_OPTIONS ?? nodeOptions,
        ...options.env,
      },
    });
    const k = new KapitanServer(server);
    k.stats.attach(server.process.stdout);
    k.owner = await signupUser(server.url, 'bench');
    k.projectId = (await k.owner.api.createProject({ name: 'bench' })).id;
    k.store = await Store.open(options.db === 'mysql' ? { kind: 'mysql', url: server.databaseUrl! } : { kind: 'sqlite', file: path.join(server.dataDir, 'kapitan.sqlite') });
    return k;
  }

  get url(): string {
    return this.server.url;
  }
  get pid(): number {
    return this.server.process.pid!;
  }
  get ticks(): BenchStats[] {
    return this.stats.ticks;
  }
  get api(): ApiClient {
    return this.owner.api;
  }

  gcStats(): Promise<BenchStats> {
    return this.stats.gc(this.pid);
  }

  async enrolmentToken(maxUses: number): Promise<string> {
    return (await this.api.createEnrolmentToken(this.projectId, { maxUses: Math.min(100_000, Math.max(1, maxUses)) })).token;
  }

  async run(script: string, targets: RunTargets): Promise<{ runId: string; executions: { id: string; machineId: string }[] }> {
    return this.api.createExecution(this.projectId, { script, targets: targets.all ? { all: true } : { machineIds: targets.machineIds! } });
  }

  dashboard(): Promise<Socket> {
    return connectSocket(this.url, '/live', { token: this.owner.accessToken }, { timeoutMs: 30_000 });
  }

  async restart(): Promise<RestartTimes> {
    const t0 = Date.now();
    await this.server.stop();
    const t1 = Date.now();
    let listeningAt: number | null = null;
    let restarted = false;
    // The old process is gone, so the first 200 from /live is the new one listening.
    const probe = (async () => {
      while (listeningAt === null && !restarted) {
        try {
          const res = await fetch(`${this.url}/api/health/live`, { signal: AbortSignal.timeout(1_000) });
          await res.text();
          if (res.status === 200) listeningAt = Date.now();
        } catch {
          // not listening yet
        }
        if (listeningAt === null) await sleep(25);
      }
    })();
    try {
      await this.server.restart();
    } finally {
      restarted = true;
    }
    const t2 = Date.now();
    await probe;
    this.stats.attach(this.server.process.stdout);
    return { stopMs: t1 - t0, startMs: Math.min(listeningAt ?? t2, t2) - t1, readyMs: t2 - t1 };
  }

  async dispose(): Promise<void> {
    await this.store?.close();
    await this.server.dispose();
  }
}

/** The bare socket.io relay (workers/relay.cjs) in its own process. */
export class RelayServer implements BenchServer {
  readonly kind = 'baseline' as const;
  private readonly stats = new StatsReader();
  private proc!: ManagedProcess;
  private generation = 0;

  private constructor(readonly port: number) {}

  static async start(): Promise<RelayServer> {
    const relay = new RelayServer(await freePort());
    await relay.launch();
    return relay;
  }

  private async launch(): Promise<void> {
    const entry = path.join(__dirname, '../workers/relay.cjs');
    this.proc = spawnProcess(`relay${this.generation++ ? `#${this.generation}` : ''}`, process.execPath, [entry, String(this.port)], {
      env: childEnv({}),
      cwd: REPO_ROOT,
    });
    this.stats.attach(this.proc.child.stdout);
    await this.proc.waitForLine(/relay listening/, 30_000);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  get pid(): number {
    return this.proc.pid!;
  }
  get ticks(): BenchStats[] {
    return this.stats.ticks;
  }

  gcStats(): Promise<BenchStats> {
    return this.stats.gc(this.pid);
  }

  async run(script: string, targets: RunTargets): Promise<{ runId: string; executions: { id: string; machineId: string }[] }> {
    const res = await fetch(`${this.url}/run`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...targets, script }) });
    if (res.status !== 201) throw new Error(`relay /run: HTTP ${res.status}`);
    return (await res.json()) as { runId: string; executions: { id: string; machineId: string }[] };
  }

  async relayStats(): Promise<{ started: number; finished: number; outputMessages: number; chunks: number; machines: number }> {
    return (await (await fetch(`${this.url}/stats`)).json()) as { started: number; finished: number; outputMessages: number; chunks: number; machines: number };
  }

  dashboard(): Promise<Socket> {
    return connectSocket(this.url, '/live', {}, { timeoutMs: 30_000 });
  }

  async restart(): Promise<RestartTimes> {
    const t0 = Date.now();
    await this.proc.stop();
    const t1 = Date.now();
    await this.launch();
    return { stopMs: t1 - t0, startMs: Date.now() - t1, readyMs: null };
  }

  async dispose(): Promise<void> {
    await this.proc.dispose();
  }
}

/** Mean of each field over the tick lines of [from, to]. */
export function idleStats(ticks: readonly BenchStats[], from: number, to: number): { lagP99Ms: number; lagMaxMs: number; lagP50Ms: number; elu: number; n: number } {
  const w = ticks.filter((t) => t.reason === 'tick' && t.at >= from && t.at <= to);
  const avg = (f: (t: BenchStats) => number): number => (w.length ? w.reduce((a, t) => a + f(t), 0) / w.length : NaN);
  return { lagP50Ms: avg((t) => t.lagP50Ms), lagP99Ms: avg((t) => t.lagP99Ms), lagMaxMs: w.length ? Math.max(...w.map((t) => t.lagMaxMs)) : NaN, elu: avg((t) => t.elu), n: w.length };
}

/** Emit with ack and a deadline. */
export async function ask<T>(socket: Socket, event: string, payload: unknown, timeoutMs = 30_000): Promise<T> {
  return (await socket.timeout(timeoutMs).emitWithAck(event, payload)) as T;
}

export { sleep };
