/**
 * Runner side of the simulated agents: N agents split over worker processes
 * (workers/sim-agents.ts), so no process holds more than `perWorker`
 * sockets (open files are capped at 20,000 per process) and the load is
 * spread over the cores.
 */
import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { AgentTuning, FromWorker, RunRecord, ToWorker, WorkerStatus } from './fleet-protocol';
import { sleep } from './stats';

const WORKER = path.join(__dirname, '../workers/sim-agents.ts');
const REGISTER = path.join(__dirname, '../register.cjs');

export interface FleetOptions {
  role: 'kapitan' | 'baseline';
  serverUrl: string;
  count: number;
  token?: string;
  tuning?: AgentTuning;
  stampSends?: boolean;
  /** Containers of each agent's simulated Docker engine (default none: no container supervision). */
  containers?: number;
  /** Metrics samplers at this idle interval, started by `metrics(true)`. */
  metricsIntervalMs?: number;
  /** Most agents per worker process; default 2,500. */
  perWorker?: number;
  /** At least this many workers once count > 1,000; default 2. */
  minWorkers?: number;
  /** Concurrent enrolments per worker; default 8. */
  enrolConcurrency?: number;
  log?: (line: string) => void;
}

type Waiter = { match: (m: FromWorker) => boolean; resolve: (m: FromWorker) => void };

class Worker {
  readonly child: ChildProcess;
  status: WorkerStatus | null = null;
  private waiters: Waiter[] = [];
  exited = false;

  constructor(
    readonly id: number,
    private readonly onError: (message: string) => void,
  ) {
    this.child = fork(WORKER, [String(id)], {
      execArgv: ['--require', REGISTER, '--max-old-space-size=4096'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.on('message', (m: FromWorker) => {
      if (m.type === 'status') this.status = m;
      if (m.type === 'error') this.onError(`worker ${id}: ${m.message}`);
      for (const w of [...this.waiters]) {
        if (w.match(m)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    });
    this.child.once('exit', (code, signal) => {
      this.exited = true;
      if (code !== 0 && signal !== 'SIGTERM' && signal !== 'SIGKILL') this.onError(`worker ${id} exited (code ${code}, signal ${signal})`);
    });
  }

  send(m: ToWorker): void {
    if (!this.exited) this.child.send(m);
  }

  next<T extends FromWorker>(match: (m: FromWorker) => boolean, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`worker ${this.id}: no ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter: Waiter = {
        match,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m as T);
        },
      };
      this.waiters.push(waiter);
    });
  }
}

export interface Machine {
  index: number;
  machineId: string;
}

export class Fleet {
  readonly machines: Machine[] = [];
  /** Wall time of the enrolments (slowest worker). */
  enrolMs = 0;
  private readonly workers: Worker[] = [];
  private readonly errors: string[] = [];

  private constructor(readonly options: FleetOptions) {}

  /** Spawns the workers, enrols every agent (role kapitan) and builds them; nothing connects yet. */
  static async start(options: FleetOptions): Promise<Fleet> {
    const fleet = new Fleet(options);
    const perWorker = options.perWorker ?? 2500;
    const n = Math.max(options.count > 1000 ? (options.minWorkers ?? 2) : 1, Math.ceil(options.count / perWorker));
    const base = Math.floor(options.count / n);
    let index = 0;
    const inits: Promise<FromWorker>[] = [];
    for (let w = 0; w < n; w++) {
      const count = base + (w < options.count % n ? 1 : 0);
      const worker = new Worker(w, (msg) => {
        fleet.errors.push(msg);
        (options.log ?? console.error)(msg);
      });
      fleet.workers.push(worker);
      const inited = worker.next((m) => m.type === 'inited' || m.type === 'error', 30 * 60_000, 'enrolment');
      worker.send({
        cmd: 'init',
        role: options.role,
        serverUrl: options.serverUrl,
        baseIndex: index,
        count,
        token: options.token,
        enrolConcurrency: options.enrolConcurrency,
        tuning: options.tuning ?? {},
        stampSends: options.stampSends,
        containers: options.containers,
        metricsIntervalMs: options.metricsIntervalMs,
      });
      inits.push(inited);
      index += count;
    }
    try {
      for (const m of await Promise.all(inits)) {
        if (m.type === 'error') throw new Error(m.message);
        if (m.type === 'inited') {
          fleet.machines.push(...m.machines);
          fleet.enrolMs = Math.max(fleet.enrolMs, m.enrolMs);
        }
      }
    } catch (err) {
      await fleet.stop();
      throw err;
    }
    fleet.machines.sort((a, b) => a.index - b.index);
    return fleet;
  }

  get pids(): number[] {
    return this.workers.map((w) => w.child.pid!).filter(Boolean);
  }

  /** Starts the next `count` agents (default: all the rest), `perSecond` new connections a second over all workers. */
  async connect(perSecond = 2000, count?: number): Promise<void> {
    const each = Math.max(1, Math.round(perSecond / this.workers.length));
    const done = this.workers.map((w) => w.next((m) => m.type === 'connected', 30 * 60_000, 'connect'));
    this.workers.forEach((w, i) => {
      const share = count === undefined ? undefined : Math.floor(count / this.workers.length) + (i < count % this.workers.length ? 1 : 0);
      w.send({ cmd: 'connect', perSecond: each, count: share });
    });
    await Promise.all(done);
  }

  /** The last status of every worker, summed. */
  status(): Omit<WorkerStatus, 'type' | 'worker'> {
    const sum = {
      agents: 0, ready: 0, back: 0, down: 0, connectErrors: 0, running: 0, finished: 0, done: 0, outboxBytes: 0, refused: 0, dropped: 0,
      snapshots: 0, changeMessages: 0, changedContainers: 0, burstRestarts: 0,
      metricsSent: 0, metricsAcked: 0, metricsRefused: 0, metricsFailed: 0,
    };
    for (const w of this.workers) {
      const s = w.status;
      if (!s) continue;
      for (const k of Object.keys(sum) as (keyof typeof sum)[]) sum[k] += s[k];
    }
    return sum;
  }

  /** Resolves with the time it took once `check(status)` holds; throws at the deadline. */
  async waitFor(check: (s: ReturnType<Fleet['status']>) => boolean, timeoutMs: number, what: string): Promise<number> {
    const t0 = Date.now();
    while (Date.now() - t0 < timeoutMs) {
      if (this.errors.length) throw new Error(`fleet failed: ${this.errors.join('; ')}`);
      if (check(this.status())) return Date.now() - t0;
      await sleep(50);
    }
    throw new Error(`fleet: ${what} not reached within ${timeoutMs} ms (status ${JSON.stringify(this.status())})`);
  }

  /** Every agent restarts `perAgent` of its simulated containers within `windowMs` (see the protocol). */
  async containerBurst(perAgent: number, windowMs: number): Promise<void> {
    const acks = this.workers.map((w) => w.next((m) => m.type === 'ok' && m.cmd === 'containerBurst', 30_000, 'containerBurst'));
    for (const w of this.workers) w.send({ cmd: 'containerBurst', perAgent, windowMs });
    await Promise.all(acks);
  }

  async metrics(on: boolean): Promise<void> {
    const acks = this.workers.map((w) => w.next((m) => m.type === 'ok' && m.cmd === 'metrics', 30_000, 'metrics'));
    for (const w of this.workers) w.send({ cmd: 'metrics', on });
    await Promise.all(acks);
  }

  /** From now on, count agents that come back. */
  async mark(): Promise<void> {
    const acks = this.workers.map((w) => w.next((m) => m.type === 'ok' && m.cmd === 'mark', 10_000, 'mark'));
    for (const w of this.workers) w.send({ cmd: 'mark' });
    await Promise.all(acks);
    await sleep(300); // fresh statuses
  }

  async collect(): Promise<{ runs: RunRecord[]; sends: Map<string, number>; emits: Map<string, number>; metricsAckMs: number[]; patches: Map<string, { emitMs: number; ackMs: number }> }> {
    const replies = this.workers.map((w) => w.next<Extract<FromWorker, { type: 'collected' }>>((m) => m.type === 'collected', 60_000, 'collect'));
    for (const w of this.workers) w.send({ cmd: 'collect' });
    const runs: RunRecord[] = [];
    const sends = new Map<string, number>();
    const emits = new Map<string, number>();
    const metricsAckMs: number[] = [];
    const patches = new Map<string, { emitMs: number; ackMs: number }>();
    for (const r of await Promise.all(replies)) {
      runs.push(...r.runs);
      for (const [k, emitMs, ackMs] of r.patches) patches.set(k, { emitMs, ackMs });
      for (const ms of r.metricsAckMs) metricsAckMs.push(ms);
      for (const [k, v] of r.sends) sends.set(k, v);
      for (const [k, v] of r.emits) emits.set(k, v);
    }
    return { runs, sends, emits, metricsAckMs, patches };
  }

  /** Forget the records of past runs (between measurements). */
  async forget(): Promise<void> {
    const acks = this.workers.map((w) => w.next((m) => m.type === 'ok' && m.cmd === 'forget', 10_000, 'forget'));
    for (const w of this.workers) w.send({ cmd: 'forget' });
    await Promise.all(acks);
    await sleep(300);
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.workers.map(async (w) => {
        if (w.exited) return;
        const exited = new Promise<void>((resolve) => w.child.once('exit', () => resolve()));
        w.send({ cmd: 'stop' });
        const t = setTimeout(() => w.child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }),
    );
  }
}
