/**
 * A worker process holding many simulated agents. Each one is the agent's
 * own runtime (`Agent` from agent/: the same AgentConnection with its
 * handshake, hello, heartbeats and reconnect backoff, the same Outbox with
 * its acks, window and resend, the same ExecutionManager with its
 * de-duplication and back-pressure), given three things instead of the
 * host: static facts, an in-memory journal (MemoryJournal, also agent/'s)
 * and agent/'s SimulatedExecution, which writes what the script's
 * `# kapitan-bench` directive asks for instead of spawning a shell. So the protocol is shared, not
 * forked: what differs from `kapitan-agent run` is only what is not on the
 * wire (no process, no files).
 *
 * Driven over IPC by lib/fleet.ts (messages in lib/fleet-protocol.ts).
 */
import { createHash, type Hash } from 'node:crypto';
import { Agent, MemoryJournal, createLogger, type ExecutionCallbacks, type ExecutionRunner, type OutboxMessage, type ServerLink } from '@kapitan/agent';
import { SimulatedDockerEngine, SimulatedExecution, simulatedMetricsSampler, type MetricsSampler } from '@kapitan/agent/testing';
import { ServerToAgentEvents, type EnrolResponse, type ExecutionDispatch, type ExecutionFinished, type MachineFacts } from '@kapitan/shared';
import type { FromWorker, RunRecord, ToWorker, WorkerStatus } from '../lib/fleet-protocol';
import { countLines, parseSpec, simulatedOutput, type OutputSpec } from '../lib/output';
import { nowMs } from '../lib/stats';

const workerId = Number(process.argv[2] ?? 0);
const send = (m: FromWorker): void => void process.send!(m);

const errorLines = { n: 0 };
const logger = createLogger({
  level: (process.env.KAPITAN_BENCH_AGENT_LOG_LEVEL as 'error' | 'warn' | 'info' | undefined) ?? 'error',
  write: (l) => {
    // A few lines are enough to see what goes wrong; thousands of agents must not flood the runner.
    if (errorLines.n++ < 20) process.stderr.write(`[sim-agents ${workerId}] ${l}`);
  },
});

let withContainers = false;

function facts(index: number): MachineFacts {
  return {
    hostname: `bench-${index}`,
    os: 'Debian GNU/Linux 12 (bench)',
    platform: 'linux',
    kernel: '6.1.0',
    arch: 'x64',
    cpus: 2,
    memoryBytes: 8 * 1024 ** 3,
    agentVersion: 'bench',
    dockerAvailable: withContainers,
  };
}

interface SimAgent {
  index: number;
  machineId: string;
  agent: Agent;
  engine: SimulatedDockerEngine | null;
  sampler: MetricsSampler | null;
  ready: boolean;
  back: boolean;
  down: boolean;
}

const agents: SimAgent[] = [];
const runs = new Map<string, RunRecord>();
const dispatchSeen = new Map<string, number>();
/** When each output message first left (key executionId:firstSeq) and when each chunk was cut (executionId:seq). */
const sends = new Map<string, number>();
const emits = new Map<string, number>();
let stamp = false;
const counters = { connectErrors: 0, refused: 0, dropped: 0, running: 0, finished: 0, done: 0, snapshots: 0, changeMessages: 0, changedContainers: 0, burstRestarts: 0, metricsSent: 0, metricsAcked: 0, metricsRefused: 0, metricsFailed: 0 };
/** Send → ack of every metrics sample (ms). */
const metricsAckMs: number[] = [];
/** Stamped containers in `containers:changed` (see the protocol's `patches`): first emit and its ack. */
const patches = new Map<string, { emitMs: number; ackMs: number }>();
const BENCH_LABEL = 'kapitan.bench.at';
let metricsIntervalMs = 0;
const metricsStarts = new Set<NodeJS.Timeout>();

/**
 * The agent's own SimulatedExecution (agent/src/simulated.ts) for what the
 * script's directive asks, observed on its way to the manager: every chunk
 * is hashed and counted (to be compared with what the server stored) and,
 * when asked, the moment it was cut is kept (for latency). A `delayMs` holds
 * the start back (a dashboard subscribes meanwhile).
 */
class ObservedRun implements ExecutionRunner {
  readonly executionId: string;
  readonly pid = null;
  readonly directory = null;
  readonly done: Promise<ExecutionFinished>;
  private readonly inner: SimulatedExecution;
  private readonly hash: Hash = createHash('sha256');
  private readonly rec: RunRecord;
  private delay: NodeJS.Timeout | null = null;

  constructor(
    dispatch: ExecutionDispatch,
    callbacks: ExecutionCallbacks,
    private readonly spec: OutputSpec,
    machineIndex: number,
    dispatchMs: number,
  ) {
    this.executionId = dispatch.executionId;
    this.rec = {
      executionId: this.executionId,
      machineIndex,
      dispatchMs,
      startMs: NaN,
      endMs: NaN,
      doneMs: NaN,
      lines: 0,
      chunks: 0,
      bytes: 0,
      lastSeq: -1,
      sha256: '',
      status: 'running',
      duplicateDispatches: 0,
    };
    runs.set(this.executionId, this.rec);
    const id = this.executionId;
    this.inner = new SimulatedExecution(dispatch, simulatedOutput(spec), {
      onStarted: (started) => {
        this.rec.startMs = nowMs();
        counters.running++;
        callbacks.onStarted?.(started);
      },
      onChunk: (chunk) => {
        if (stamp) emits.set(`${id}:${chunk.seq}`, nowMs());
        this.hash.update(chunk.data);
        this.rec.chunks++;
        this.rec.lines += countLines(chunk.data);
        this.rec.bytes += chunk.data.length;
        this.rec.lastSeq = chunk.seq;
        callbacks.onChunk?.(chunk);
      },
      onFinished: (finished) => {
        this.rec.endMs = nowMs();
        this.rec.sha256 = this.hash.digest('hex');
        this.rec.status = finished.status;
        counters.running--;
        counters.finished++;
        callbacks.onFinished?.(finished);
      },
    });
    this.done = this.inner.done;
  }

  get startedAt(): string | null {
    return this.inner.startedAt;
  }

  async start(): Promise<void> {
    if (!this.spec.delayMs) return this.inner.start();
    this.delay = setTimeout(() => void this.inner.start(), this.spec.delayMs);
  }
  cancel(): boolean {
    if (this.delay) clearTimeout(this.delay);
    return this.inner.cancel();
  }
  pause(): void {
    this.inner.pause();
  }
  resume(): void {
    this.inner.resume();
  }
}

async function enrol(serverUrl: string, token: string, index: number): Promise<EnrolResponse> {
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await fetch(`${serverUrl}/api/agent/enrol`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ token, facts: facts(index), labels: { bench: 'sim' } }),
        signal: AbortSignal.timeout(30_000),
      });
      const body = (await res.json()) as EnrolResponse;
      if (res.status === 201) return body;
      throw new Error(`HTTP ${res.status} ${JSON.stringify(body)}`);
    } catch (err) {
      if (attempt >= 5) throw new Error(`enrolment of agent ${index} failed: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

async function init(m: Extract<ToWorker, { cmd: 'init' }>): Promise<void> {
  stamp = !!m.stampSends;
  withContainers = (m.containers ?? 0) > 0;
  metricsIntervalMs = m.metricsIntervalMs ?? 0;
  const t0 = Date.now();
  const credentials: { index: number; machineId: string; credential: string }[] = [];
  if (m.role === 'kapitan') {
    let next = 0;
    const lanes = Array.from({ length: Math.max(1, m.enrolConcurrency ?? 8) }, async () => {
      while (next < m.count) {
        const index = m.baseIndex + next++;
        const r = await enrol(m.serverUrl, m.token!, index);
        credentials.push({ index, machineId: r.machineId, credential: r.credential });
      }
    });
    await Promise.all(lanes);
    credentials.sort((a, b) => a.index - b.index);
  } else {
    for (let i = 0; i < m.count; i++) {
      const index = m.baseIndex + i;
      // The relay takes the credential as the machine id.
      credentials.push({ index, machineId: `bench-${index}`, credential: `bench-${index}` });
    }
  }
  const enrolMs = Date.now() - t0;
  for (const c of credentials) {
    const engine = withContainers ? new SimulatedDockerEngine({ containers: m.containers!, seed: String(c.index) }) : null;
    const sim: SimAgent = { index: c.index, machineId: c.machineId, agent: null as unknown as Agent, engine, sampler: null, ready: false, back: false, down: false };
    const createRunner = (dispatch: ExecutionDispatch, callbacks: ExecutionCallbacks): ExecutionRunner => {
      const spec = parseSpec(dispatch.script) ?? { lines: 0, lineBytes: 40, linesPerTick: 1, tickMs: 0 };
      return new ObservedRun(dispatch, callbacks, spec, c.index, dispatchSeen.get(dispatch.executionId) ?? nowMs());
    };
    const agent = new Agent({
      state: { server: m.serverUrl, credential: c.credential },
      stateDir: '/nonexistent/kapitan-bench', // never touched: the journal is in memory and no script is spawned
      journal: new MemoryJournal(),
      facts: () => facts(c.index),
      createRunner,
      logger,
      ...(engine ? { containers: true, supervisor: { engine: engine.client } } : {}),
      config: {
        ...(m.tuning.heartbeatMs ? { heartbeatMs: m.tuning.heartbeatMs } : {}),
        ...(m.tuning.maxBackoffMs ? { maxBackoffMs: m.tuning.maxBackoffMs } : {}),
        ...(m.tuning.outboxBytes ? { outboxBytes: m.tuning.outboxBytes } : {}),
        ...(m.tuning.ackTimeoutMs ? { ackTimeoutMs: m.tuning.ackTimeoutMs } : {}),
      },
    });
    sim.agent = agent;
    if (engine) {
      // The supervisor's link is the connection: its patches are timed on their way out (what is sent is untouched),
      // so the runner can tell the agent's share of event → dashboard (debounce, queue, worker CPU) from the server's.
      const conn = agent.connection;
      const request = conn.request.bind(conn) as (event: string, payload: unknown, timeoutMs?: number) => Promise<unknown>;
      conn.request = (async (event: string, payload: unknown, timeoutMs?: number) => {
        if (event !== 'containers:changed') return request(event, payload, timeoutMs);
        const t = nowMs();
        const mine: { emitMs: number; ackMs: number }[] = [];
        for (const ct of (payload as { containers: { id: string; labels: Record<string, string> }[] }).containers) {
          const at = ct.labels[BENCH_LABEL];
          if (at === undefined) continue;
          const key = `${c.machineId}:${ct.id}:${at}`;
          if (patches.has(key)) continue;
          const rec = { emitMs: t, ackMs: NaN };
          patches.set(key, rec);
          mine.push(rec);
        }
        const ack = await request(event, payload, timeoutMs);
        const done = nowMs();
        if ((ack as { ok?: unknown } | null)?.ok === true) for (const rec of mine) rec.ackMs = done;
        return ack;
      }) as unknown as typeof conn.request;
    }
    if (metricsIntervalMs > 0) {
      const conn = agent.connection;
      // The agent's link, counted: what was sent, what the server took, how long its ack took.
      const link: ServerLink = {
        get ready() {
          return conn.ready;
        },
        request: async (event, payload, timeoutMs) => {
          counters.metricsSent++;
          const t = nowMs();
          try {
            const ack = await conn.request(event, payload, timeoutMs);
            metricsAckMs.push(nowMs() - t);
            if ((ack as { ok?: unknown } | null)?.ok === true) counters.metricsAcked++;
            else counters.metricsRefused++;
            return ack;
          } catch (err) {
            counters.metricsFailed++;
            throw err;
          }
        },
      };
      sim.sampler = simulatedMetricsSampler({ link, engine, idleIntervalMs: metricsIntervalMs, seed: c.index, logger });
      agent.connection.on(ServerToAgentEvents.metricsWatch, (p) => sim.sampler?.watch(p));
    }
    // Time of arrival of each dispatch, before the manager sees it (and duplicates).
    agent.connection.prependListener('execution:dispatch', (p) => {
      const id = (p as { executionId?: string }).executionId;
      if (typeof id !== 'string') return;
      const r = runs.get(id);
      if (r) r.duplicateDispatches++;
      else if (!dispatchSeen.has(id)) dispatchSeen.set(id, nowMs());
    });
    agent.connection.on('ready', () => {
      sim.ready = true;
      sim.back = true;
    });
    agent.connection.on('down', () => {
      sim.ready = false;
      sim.down = true;
    });
    agent.connection.on('connectError', (_err, refused) => {
      counters.connectErrors++;
      if (refused) counters.refused++;
    });
    agent.outbox.on('done', (executionId) => {
      const r = runs.get(executionId);
      if (r && Number.isNaN(r.doneMs)) {
        r.doneMs = nowMs();
        counters.done++;
      }
      dispatchSeen.delete(executionId);
    });
    agent.outbox.on('dropped', () => void counters.dropped++);
    agent.containers?.supervisor.on('snapshotSent', () => void counters.snapshots++);
    agent.containers?.supervisor.on('changesSent', (changed) => {
      counters.changeMessages++;
      counters.changedContainers += changed;
    });
    if (stamp) {
      // When each output message first leaves (socket → dashboard latency); the outbox itself is untouched.
      const attach = agent.outbox.attach.bind(agent.outbox);
      agent.outbox.attach = (transport) =>
        attach({
          send: (message: OutboxMessage, callback) => {
            if (message.event === 'execution:output') {
              const key = `${message.payload.executionId}:${message.payload.chunks[0]!.seq}`;
              if (!sends.has(key)) sends.set(key, nowMs());
            }
            transport.send(message, callback);
          },
        });
    }
    agents.push(sim);
  }
  send({ type: 'inited', worker: workerId, machines: credentials.map((c) => ({ index: c.index, machineId: c.machineId })), enrolMs });
}

let started = 0;
async function connect(perSecond: number, count = agents.length): Promise<void> {
  const batch = Math.max(1, Math.round(perSecond / 20));
  const end = Math.min(agents.length, started + count);
  while (started < end) {
    const upTo = Math.min(end, started + batch);
    for (; started < upTo; started++) agents[started]!.agent.start();
    if (started < end) await new Promise((r) => setTimeout(r, 50));
  }
  send({ type: 'connected', worker: workerId });
}

/** Restarts `perAgent` distinct containers of every agent, each at a random moment of the window. */
function containerBurst(perAgent: number, windowMs: number): void {
  for (const a of agents) {
    const engine = a.engine;
    if (!engine) continue;
    const ids = [...engine.ids].sort(() => Math.random() - 0.5).slice(0, perAgent);
    for (const id of ids) {
      setTimeout(() => {
        engine.restart(id, { 'kapitan.bench.at': String(nowMs()) });
        counters.burstRestarts++;
      }, Math.random() * windowMs);
    }
  }
  send({ type: 'ok', worker: workerId, cmd: 'containerBurst' });
}

function status(): WorkerStatus {
  let ready = 0;
  let back = 0;
  let down = 0;
  let outboxBytes = 0;
  for (const a of agents) {
    if (a.ready) ready++;
    if (a.back) back++;
    if (a.down) down++;
    outboxBytes += a.agent.outbox.bytes;
  }
  return { type: 'status', worker: workerId, agents: agents.length, ready, back, down, ...counters, outboxBytes };
}

let lastStatus = '';
setInterval(() => {
  const s = status();
  const text = JSON.stringify(s);
  if (text !== lastStatus) {
    lastStatus = text;
    send(s);
  }
}, 200);

process.on('message', (m: ToWorker) => {
  const fail = (err: unknown): void => send({ type: 'error', worker: workerId, message: err instanceof Error ? err.stack ?? err.message : String(err) });
  try {
    switch (m.cmd) {
      case 'init':
        init(m).catch(fail);
        break;
      case 'connect':
        connect(m.perSecond, m.count).catch(fail);
        break;
      case 'metrics':
        for (const t of metricsStarts) clearTimeout(t);
        metricsStarts.clear();
        for (const a of agents) {
          const sampler = a.sampler;
          if (!sampler) continue;
          if (!m.on) {
            sampler.stop();
            continue;
          }
          const t = setTimeout(() => {
            metricsStarts.delete(t);
            sampler.start();
          }, Math.random() * metricsIntervalMs);
          metricsStarts.add(t);
        }
        send({ type: 'ok', worker: workerId, cmd: 'metrics' });
        break;
      case 'containerBurst':
        containerBurst(m.perAgent, m.windowMs);
        break;
      case 'mark':
        for (const a of agents) {
          a.back = false;
          a.down = false;
        }
        lastStatus = '';
        send({ type: 'ok', worker: workerId, cmd: 'mark' });
        break;
      case 'collect':
        send({
          type: 'collected',
          worker: workerId,
          runs: [...runs.values()],
          sends: [...sends.entries()],
          emits: [...emits.entries()],
          metricsAckMs,
          patches: [...patches].map(([k, r]) => [k, r.emitMs, r.ackMs]),
        });
        break;
      case 'forget':
        runs.clear();
        sends.clear();
        emits.clear();
        patches.clear();
        counters.finished = counters.done = 0;
        lastStatus = '';
        send({ type: 'ok', worker: workerId, cmd: 'forget' });
        break;
      case 'stop':
        for (const a of agents) {
          a.sampler?.stop();
          a.agent.abandon();
        }
        send({ type: 'ok', worker: workerId, cmd: 'stop' });
        setTimeout(() => process.exit(0), 100);
        break;
    }
  } catch (err) {
    fail(err);
  }
});
process.on('disconnect', () => process.exit(0));
