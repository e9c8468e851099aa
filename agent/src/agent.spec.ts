import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExecutionDispatch, MachineFacts } from '@kapitan/shared';
import { Agent, type AgentOptions } from './agent';
import { ACTIVE_FILE, KNOWN_FILE } from './journal';
import { scriptSha256 } from './policy';
import { RUN_DIR } from './state';
import { FakeKapitanServer } from './test-support/fake-server';
import { newId, nextEvent, pidAlive, tmpDir, waitFor } from './test-support/wait';

const facts: MachineFacts = {
  hostname: 'agent-spec',
  os: 'Test OS',
  platform: 'linux',
  kernel: '6.0.0',
  arch: 'x64',
  cpus: 2,
  memoryBytes: 1024,
  agentVersion: '0.1.0',
  dockerAvailable: false,
};

let server: FakeKapitanServer;
let stateDir: string;
const agents: Agent[] = [];
const leftovers: number[] = [];
const CRED = 'machine-credential';

beforeEach(async () => {
  server = await FakeKapitanServer.start();
  server.addMachine(CRED, newId());
  stateDir = tmpDir();
});
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop({ drainMs: 0, scriptGraceMs: 200 });
  await server.close();
  for (const pid of leftovers.splice(0)) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  fs.rmSync(stateDir, { recursive: true, force: true });
});

function startAgent(o: Partial<AgentOptions> = {}): Agent {
  const agent = new Agent({
    state: { server: server.url, credential: CRED },
    stateDir,
    facts: () => facts,
    ...o,
    config: { maxBackoffMs: 50, heartbeatMs: 1000, killGraceMs: 500, ackTimeoutMs: 300, ...o.config },
  });
  agents.push(agent);
  agent.start();
  return agent;
}

const dispatch = (script: string, d: Partial<ExecutionDispatch> = {}): ExecutionDispatch => ({
  executionId: newId(),
  script,
  args: [],
  env: {},
  cwd: null,
  timeoutSeconds: 60,
  ...d,
});

const finishedOf = (id: string) => server.finished.get(id)?.[0];
const activeJournal = () => JSON.parse(fs.readFileSync(path.join(stateDir, ACTIVE_FILE), 'utf8')) as { executions: { executionId: string }[] };

describe('Agent', () => {
  it('runs a dispatched script and streams its output to the server', async () => {
    const agent = startAgent();
    await nextEvent(agent.connection, 'ready');
    const d = dispatch('echo "hello $1"; echo oops >&2; exit 0', { args: ['world'] });
    server.dispatch(d);
    const fin = await waitFor(() => finishedOf(d.executionId), 'finished');
    expect(fin).toMatchObject({ status: 'succeeded', exitCode: 0, lastSeq: 1 });
    expect(server.started.get(d.executionId)).toHaveLength(1);
    expect(server.log(d.executionId).chunks).toEqual([
      { seq: 0, stream: 'stdout', data: 'hello world\n' },
      { seq: 1, stream: 'stderr', data: 'oops\n' },
    ]);
    // forgotten once acknowledged: nothing active, scratch directory gone
    await waitFor(() => agent.outbox.isEmpty() && activeJournal().executions.length === 0, 'journal cleared');
    expect(fs.readdirSync(path.join(stateDir, RUN_DIR))).toEqual([]);
    expect(fs.readFileSync(path.join(stateDir, KNOWN_FILE), 'utf8')).toBe(d.executionId + '\n');
  });

  it('a script the client policy refuses never runs: refused with the rule, journalled, a repeat (also after a restart) runs nothing', async () => {
    const allowed = 'echo allowed';
    const policy = {
      path: '/etc/kapitan/agent-policy.json',
      found: true,
      sha256: null,
      effective: { scripts: { enabled: true, allowSha256: [scriptSha256(allowed)] }, deploys: { enabled: true, pathPrefixes: [] }, docker: { enabled: true, images: null }, readOnly: false },
    };
    const a = startAgent({ policy });
    await nextEvent(a.connection, 'ready');
    expect(server.hellos.at(-1)!.policy).toEqual(policy);
    const marker = path.join(stateDir, 'ran');
    const d = dispatch(`touch ${marker}`);
    server.dispatch(d);
    const fin = await waitFor(() => finishedOf(d.executionId), 'refused');
    expect(fin).toEqual({
      executionId: d.executionId,
      status: 'refused',
      exitCode: null,
      signal: null,
      lastSeq: -1,
      finishedAt: expect.any(String),
      reason: `refused by the client policy (/etc/kapitan/agent-policy.json): the script's sha256 ${scriptSha256(`touch ${marker}`)} is not in scripts.allowSha256`,
    });
    server.dispatch(d);
    const ok = dispatch(allowed);
    server.dispatch(ok);
    expect(await waitFor(() => finishedOf(ok.executionId), 'allowed finished')).toMatchObject({ status: 'succeeded' });
    await a.stop({ drainMs: 1000 });
    agents.splice(agents.indexOf(a), 1);

    const b = startAgent({ policy });
    await nextEvent(b.connection, 'ready');
    server.dispatch(d);
    const next = dispatch(allowed);
    server.dispatch(next);
    await waitFor(() => finishedOf(next.executionId), 'next finished');
    expect(fs.existsSync(marker)).toBe(false);
    expect(server.started.has(d.executionId)).toBe(false);
    expect(server.finished.get(d.executionId)).toHaveLength(1);
  });

  it('runs a repeated dispatch once', async () => {
    const agent = startAgent();
    await nextEvent(agent.connection, 'ready');
    const counter = path.join(stateDir, 'counter');
    const d = dispatch(`echo run >> ${counter}; sleep 0.3; echo done`);
    server.dispatch(d);
    await waitFor(() => server.started.has(d.executionId), 'started');
    server.dispatch(d); // while running
    server.dispatch(d);
    await waitFor(() => finishedOf(d.executionId), 'finished');
    server.dispatch(d); // after it finished
    const d2 = dispatch('echo second');
    server.dispatch(d2); // a new one still runs
    await waitFor(() => finishedOf(d2.executionId), 'second finished');
    expect(fs.readFileSync(counter, 'utf8')).toBe('run\n');
    expect(server.started.get(d.executionId)).toHaveLength(1);
    expect(server.finished.get(d.executionId)).toHaveLength(1);
    expect(server.log(d.executionId).text).toBe('done\n');
  });

  it('loses and doubles nothing when acks are lost and the connection drops mid-stream', async () => {
    const agent = startAgent({ outbox: { window: 4 } });
    await nextEvent(agent.connection, 'ready');
    let outputs = 0;
    server.ackPolicy = (event, _payload, socket) => {
      if (event !== 'execution:output') return undefined;
      outputs++;
      if (outputs % 7 === 0) {
        setImmediate(() => socket.disconnect(true)); // connection lost after storing
        return undefined;
      }
      if (outputs % 5 === 0) return 'drop'; // ack lost
      return undefined;
    };
    const d = dispatch('i=0; while [ $i -lt 3000 ]; do echo "line $i"; [ $((i % 100)) -eq 0 ] && sleep 0.01; i=$((i+1)); done; echo end >&2');
    server.dispatch(d);
    const fin = await waitFor(() => finishedOf(d.executionId), 'finished', 30_000);
    const log = server.log(d.executionId);
    const expected = Array.from({ length: 3000 }, (_, i) => `line ${i}\n`).join('') + 'end\n';
    expect(log.gaps).toBe(0);
    expect(log.text).toBe(expected);
    expect(fin.lastSeq).toBe(log.chunks.length - 1);
    expect(server.receivedChunks(d.executionId).length).toBeGreaterThan(log.chunks.length); // some were resent
    expect(server.hellos.length).toBeGreaterThan(1);
    expect(server.finished.get(d.executionId)!.every((f) => f.status === 'succeeded')).toBe(true);
  });

  it('names running executions in the hello after a reconnect', async () => {
    const agent = startAgent();
    await nextEvent(agent.connection, 'ready');
    const d = dispatch('sleep 0.5; echo late');
    server.dispatch(d);
    await waitFor(() => server.started.has(d.executionId), 'started');
    server.kickAll();
    await waitFor(() => server.hellos.length === 2, 'second hello');
    expect(server.hellos[1]!.activeExecutionIds).toEqual([d.executionId]);
    await waitFor(() => finishedOf(d.executionId), 'finished');
    expect(server.log(d.executionId).text).toBe('late\n');
  });

  it('cancels on execution:cancel, and ignores cancels of unknown executions', async () => {
    const agent = startAgent();
    await nextEvent(agent.connection, 'ready');
    server.cancel(newId());
    const d = dispatch('echo $$; sleep 300');
    server.dispatch(d);
    await waitFor(() => server.log(d.executionId).chunks.length > 0, 'output');
    server.cancel(d.executionId);
    const fin = await waitFor(() => finishedOf(d.executionId), 'finished');
    expect(fin.status).toBe('cancelled');
    const pid = Number(server.log(d.executionId).text);
    await waitFor(() => !pidAlive(pid), 'script gone');
    server.cancel(d.executionId); // finished: ignored
  });

  it('ignores invalid dispatches and keeps working', async () => {
    const agent = startAgent();
    await nextEvent(agent.connection, 'ready');
    for (const bad of [null, 'string', { executionId: 'not-a-uuid', script: 'echo' }, { ...dispatch('echo'), extra: 1 }, { ...dispatch('x'), args: [1] }]) {
      server.nsp.emit('execution:dispatch', bad as never);
    }
    server.nsp.emit('execution:cancel', { nope: true } as never);
    const d = dispatch('echo fine');
    server.dispatch(d);
    await waitFor(() => finishedOf(d.executionId), 'finished');
    expect(server.finished.size).toBe(1);
    expect(agent.connection.ready).toBe(true);
  });

  it('drops events the server refuses and forgets the execution', async () => {
    const agent = startAgent();
    await nextEvent(agent.connection, 'ready');
    const refused = dispatch('echo secret');
    server.ackPolicy = (event, payload) =>
      event !== 'agent:hello' && event !== 'agent:heartbeat' && (payload as { executionId: string }).executionId === refused.executionId
        ? { ok: false, error: { code: 'forbidden', message: 'not this machine’s execution' } }
        : undefined;
    const dropped: string[] = [];
    agent.outbox.on('dropped', (_id, kinds) => dropped.push(...kinds));
    server.dispatch(refused);
    await waitFor(() => dropped.includes('finished'), 'finished refused');
    expect(dropped).toEqual(['started', 'output', 'finished']);
    await waitFor(() => activeJournal().executions.length === 0, 'journal cleared');
    expect(agent.outbox.isEmpty()).toBe(true);
    const ok = dispatch('echo fine');
    server.dispatch(ok);
    await waitFor(() => finishedOf(ok.executionId), 'next execution finished');
  });

  it('reports an execution interrupted by an agent restart as lost and kills its orphaned group', async () => {
    const a = startAgent();
    await nextEvent(a.connection, 'ready');
    const d = dispatch('echo started; sleep 300 & wait');
    server.dispatch(d);
    await waitFor(() => server.log(d.executionId).text === 'started\n', 'first output stored');
    const pid = server.started.get(d.executionId)![0]!.pid!;
    leftovers.push(pid);
    a.abandon(); // as if the agent process died
    agents.splice(agents.indexOf(a), 1);
    expect(pidAlive(pid)).toBe(true);

    const b = startAgent();
    const fin = await waitFor(() => finishedOf(d.executionId), 'lost report');
    expect(fin).toMatchObject({ status: 'lost', exitCode: null, signal: null });
    expect(fin.reason).toBe(`agent restarted while the script was running (pid ${pid}); its orphaned process group was killed`);
    expect([-1, 0]).toContain(fin.lastSeq); // journalled lazily: approximate
    await waitFor(() => !pidAlive(pid), 'orphaned script gone', 5000);
    await waitFor(() => b.outbox.isEmpty() && activeJournal().executions.length === 0, 'journal cleared');
    // the id is still known: a late re-dispatch does not run it again
    server.dispatch(d);
    const d2 = dispatch('echo next');
    server.dispatch(d2);
    await waitFor(() => finishedOf(d2.executionId), 'next finished');
    expect(server.started.get(d.executionId)).toHaveLength(1);
    expect(fs.readdirSync(path.join(stateDir, RUN_DIR))).toEqual([]);
  });

  it('output read but never acknowledged before a crash reaches the server after the restart, once, in order; then the execution is lost', async () => {
    const a = startAgent();
    await nextEvent(a.connection, 'ready');
    const d = dispatch('i=1; while [ $i -le 300 ]; do echo "line $i"; i=$((i+1)); done; sleep 300 & echo $!; wait');
    server.ackPolicy = (event) => (event === 'execution:output' ? 'drop' : undefined); // the server never confirms a chunk
    server.dispatch(d);
    const expected = Array.from({ length: 300 }, (_, i) => `line ${i + 1}\n`).join('');
    // the agent has read everything once the background pid line went out (it comes after line 300)
    const sentText = (): string => {
      const bySeq = new Map(server.receivedChunks(d.executionId).map((c) => [c.seq, c.data] as const));
      return [...bySeq.entries()].sort((x, y) => x[0] - y[0]).map(([, data]) => data).join('');
    };
    await waitFor(() => /line 300\n\d+\n$/.test(sentText()), 'all output sent once');
    const pid = server.started.get(d.executionId)![0]!.pid!;
    leftovers.push(pid);
    expect(server.log(d.executionId).chunks).toEqual([]); // nothing stored
    a.abandon(); // the agent dies with it all unacknowledged
    agents.splice(agents.indexOf(a), 1);

    server.ackPolicy = null;
    startAgent();
    const fin = await waitFor(() => finishedOf(d.executionId), 'lost report');
    expect(fin.status).toBe('lost');
    const log = server.log(d.executionId);
    expect(log.gaps).toBe(0);
    expect(log.text.startsWith(expected)).toBe(true);
    expect(log.text.slice(expected.length)).toMatch(/^\d+\n$/);
    expect(fin.lastSeq).toBe(log.chunks.length - 1); // from the spool, not the lazily journalled number
    await waitFor(() => !fs.existsSync(path.join(stateDir, 'spool', 'execution', d.executionId)), 'spool emptied once stored');
  });

  it('re-sends the saved final event of an execution that finished before a restart', async () => {
    const a = startAgent();
    await nextEvent(a.connection, 'ready');
    server.ackPolicy = (event) => (event === 'execution:finished' ? 'drop' : undefined);
    const d = dispatch('exit 4');
    server.dispatch(d);
    await waitFor(() => server.received.some((r) => r.event === 'execution:finished'), 'finished sent (ack lost)');
    a.abandon();
    agents.splice(agents.indexOf(a), 1);
    server.ackPolicy = null;
    startAgent();
    const fin = await waitFor(() => finishedOf(d.executionId), 'final event again');
    expect(fin).toMatchObject({ status: 'failed', exitCode: 4 });
  });

  it('back-pressure: a full outbox stops reading the script, which resumes when acks free room', async () => {
    const bound = 64 * 1024;
    const agent = startAgent({ config: { outboxBytes: bound } });
    await nextEvent(agent.connection, 'ready');
    let hold = true;
    server.ackPolicy = (event) => (event === 'execution:output' && hold ? 'hold' : undefined);
    const d = dispatch("head -c 4000000 /dev/zero | tr '\\0' 'z'; echo done >&2");
    let maxBytes = 0;
    const sampler = setInterval(() => (maxBytes = Math.max(maxBytes, agent.outbox.bytes)), 1);
    try {
      const full = nextEvent(agent.outbox, 'full');
      server.dispatch(d);
      await full;
      const runner = await waitFor(() => agent.manager.get(d.executionId), 'runner');
      await waitFor(() => (runner as unknown as { isPaused: boolean }).isPaused, 'script output paused');
      // the script is blocked on write: it neither finishes nor overfills the outbox
      await new Promise((r) => setTimeout(r, 300));
      expect(finishedOf(d.executionId)).toBeUndefined();
      expect(agent.manager.runningIds()).toEqual([d.executionId]);
      expect(agent.outbox.bytes).toBeLessThan(bound + 200 * 1024);
      hold = false;
      server.releaseHeld();
      const fin = await waitFor(() => finishedOf(d.executionId), 'finished', 30_000);
      expect(fin.status).toBe('succeeded');
    } finally {
      clearInterval(sampler);
    }
    const log = server.log(d.executionId);
    expect(log.gaps).toBe(0);
    expect(log.chunks.filter((c) => c.stream === 'stdout').map((c) => c.data).join('')).toBe('z'.repeat(4_000_000));
    // stdout and stderr are two pipes: their relative order is the order the agent read them
    expect(log.chunks.filter((c) => c.stream === 'stderr').map((c) => c.data).join('')).toBe('done\n');
    expect(maxBytes).toBeLessThan(bound + 200 * 1024);
  });
});
