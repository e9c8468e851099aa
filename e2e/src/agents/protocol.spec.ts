/**
 * The /agent namespace against raw socket.io clients speaking (and abusing)
 * the protocol: threat model T5, T6, T10, T11, T13–T16 and design invariant 4.
 */
import { AGENT_NAMESPACE, AgentEvents, LIMITS, ServerToAgentEvents, type AgentHelloAck, type ExecutionDispatch } from '@kapitan/shared';
import type { Socket } from 'socket.io-client';
import {
  connectAgentSocket,
  describeOrSkip,
  emitWithAck,
  expectConnectRefused,
  expectError,
  requireMysql,
  startServer,
  waitFor,
  waitForSocketEvent,
  type AgentSocket,
  type TestServer,
} from '../harness';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { enrolRaw, FACTS, setupProject, startOnlineAgent, waitForFinal, type TestProject } from './fixtures';

const hello = (s: AgentSocket, active: string[] = []) =>
  emitWithAck(s, AgentEvents.hello, { facts: FACTS, activeExecutionIds: active }) as Promise<AgentHelloAck>;

describeOrSkip(requireMysql())('agent protocol (raw sockets, MySQL)', () => {
  let server: TestServer;
  let a: TestProject;
  let b: TestProject;

  beforeAll(async () => {
    server = await startServer({ database: 'mysql', env: { KAPITAN_AGENT_EVENTS_PER_SECOND: '50' } });
    a = await setupProject(server.url, 'proj-a');
    b = await setupProject(server.url, 'proj-b');
  });
  afterAll(() => server?.dispose());

  /** A connected, hello'd machine of `p` and a queued execution for it, dispatched to the socket. */
  async function machineWithExecution(p: TestProject, script = 'echo hi') {
    const enrol = await enrolRaw(server.url, p);
    const socket = await connectAgentSocket(server.url, enrol.credential);
    await hello(socket);
    const dispatched = waitForSocketEvent({ socket, event: ServerToAgentEvents.dispatch });
    const run = await p.api.createExecution(p.projectId, { script, targets: { machineIds: [enrol.machineId] } });
    const d = (await dispatched) as ExecutionDispatch;
    expect(d.executionId).toBe(run.executions[0].id);
    return { enrol, socket, executionId: d.executionId };
  }

  test('enrolment tokens: expired, used up and revoked tokens are refused alike, without naming the project', async () => {
    const used = await a.api.createEnrolmentToken(a.projectId, { maxUses: 1 });
    const ok = await a.api.request('POST', '/api/agent/enrol', { token: null, body: { token: used.token, facts: FACTS } });
    expect(ok.status).toBe(201);
    const again = await a.api.request('POST', '/api/agent/enrol', { token: null, body: { token: used.token, facts: FACTS } });
    const revoked = await a.api.createEnrolmentToken(a.projectId);
    expect((await a.api.request('DELETE', `/api/projects/${a.projectId}/enrolment-tokens/${revoked.id}`)).status).toBe(204);
    const afterRevoke = await a.api.request('POST', '/api/agent/enrol', { token: null, body: { token: revoked.token, facts: FACTS } });
    const soon = await a.api.createEnrolmentToken(a.projectId, { expiresAt: new Date(Date.now() + 1500).toISOString() });
    await waitFor(() => Date.now() > Date.parse(soon.expiresAt!) + 50, { timeoutMs: 5000, message: 'token expiry' });
    const expired = await a.api.request('POST', '/api/agent/enrol', { token: null, body: { token: soon.token, facts: FACTS } });
    const forged = await a.api.request('POST', '/api/agent/enrol', { token: null, body: { token: used.token.slice(0, -4) + 'AAAA', facts: FACTS } });
    const bodies = [again, afterRevoke, expired, forged].map((r) => expectError(r, 401, 'enrolment_refused'));
    // One message for every refusal, and nothing of the project in it.
    expect(new Set(bodies.map((x) => x.message)).size).toBe(1);
    for (const r of [again, afterRevoke, expired, forged]) expect(r.text).not.toContain(a.projectId);
    const machines = await a.api.listMachines(a.projectId);
    expect(machines).toHaveLength(1);
    const tokens = await a.api.request<{ id: string; uses: number }[]>('GET', `/api/projects/${a.projectId}/enrolment-tokens`);
    expect(tokens.body.find((t) => t.id === used.id)?.uses).toBe(1);
    expect(JSON.stringify(tokens.body)).not.toContain(used.token);
  });

  test('enrol request validation: malformed, unknown fields, oversized labels → 400 naming the field', async () => {
    const token = await a.api.createEnrolmentToken(a.projectId);
    const post = (body: unknown) => a.api.request('POST', '/api/agent/enrol', { token: null, body });
    expectError(await post({ token: token.token }), 400, 'validation_failed', { field: 'facts' });
    expectError(await post({ token: token.token, facts: { ...FACTS, cpus: 'two' } }), 400, 'validation_failed', { field: 'facts.cpus' });
    expectError(await post({ token: token.token, facts: FACTS, machineId: 'x' }), 400, 'validation_failed');
    const labels = Object.fromEntries(Array.from({ length: LIMITS.labelsMax + 1 }, (_, i) => [`k${i}`, 'v']));
    expectError(await post({ token: token.token, facts: FACTS, labels }), 400, 'validation_failed', { field: 'labels' });
    expectError(await post({ token: token.token, facts: { ...FACTS, hostname: 'h'.repeat(256) } }), 400, 'validation_failed', { field: 'facts.hostname' });
    const tokens = await a.api.request<{ id: string; uses: number }[]>('GET', `/api/projects/${a.projectId}/enrolment-tokens`);
    expect(tokens.body.find((t) => t.id === token.id)?.uses).toBe(0);
  });

  test('handshake without, or with a forged, credential is refused', async () => {
    await expectConnectRefused(server.url, AGENT_NAMESPACE, {});
    await expectConnectRefused(server.url, AGENT_NAMESPACE, { credential: 'kpm_not-a-credential' });
    const { credential, machineId } = await enrolRaw(server.url, a);
    await expectConnectRefused(server.url, AGENT_NAMESPACE, { credential: credential.replace(/.{4}$/, 'AAAA') });
    await expectConnectRefused(server.url, AGENT_NAMESPACE, { credential: `kpm_${machineId}.${'A'.repeat(43)}` });
  });

  test('a revoked machine is dropped within a second and cannot reconnect', async () => {
    const { credential, machineId } = await enrolRaw(server.url, a);
    const socket = await connectAgentSocket(server.url, credential);
    await hello(socket);
    const dropped = waitForSocketEvent({ socket: socket as unknown as Socket, event: 'disconnect', timeoutMs: 1000, failOnDisconnect: false });
    expect((await a.api.request('DELETE', `/api/projects/${a.projectId}/machines/${machineId}`)).status).toBe(204);
    await dropped;
    await expectConnectRefused(server.url, AGENT_NAMESPACE, { credential });
    expect((await a.api.request('GET', `/api/projects/${a.projectId}/machines/${machineId}`)).status).toBe(404);
  });

  test("an agent reporting on another project's execution is refused, logged, and nothing is stored", async () => {
    const victim = await machineWithExecution(b, 'sleep 5');
    const attacker = await enrolRaw(server.url, a);
    const socket = await connectAgentSocket(server.url, attacker.credential);
    await hello(socket);
    const id = victim.executionId;
    const out = await emitWithAck(socket, AgentEvents.executionOutput, { executionId: id, chunks: [{ seq: 0, stream: 'stdout', data: 'pwned' }] });
    const started = await emitWithAck(socket, AgentEvents.executionStarted, { executionId: id, startedAt: new Date().toISOString() });
    const finished = await emitWithAck(socket, AgentEvents.executionFinished, {
      executionId: id,
      status: 'succeeded',
      exitCode: 0,
      signal: null,
      finishedAt: new Date().toISOString(),
      lastSeq: 0,
    });
    for (const ack of [out, started, finished]) expect(ack).toMatchObject({ ok: false, error: { code: 'not_found' } });
    // Claiming the victim's machine id in the payload changes nothing: the socket's identity is the only one.
    const claimed = await emitWithAck(socket, AgentEvents.executionOutput, {
      executionId: id,
      machineId: victim.enrol.machineId,
      chunks: [{ seq: 1, stream: 'stdout', data: 'pwned' }],
    } as never);
    expect(claimed).toMatchObject({ ok: false });
    const exec = await b.api.getExecution(id);
    expect(exec.status).toBe('dispatched');
    expect((await b.api.getExecutionLog(id)).chunks).toEqual([]);
    await waitFor(() => /not its own/.test(server.logs()), { timeoutMs: 5000, message: 'refusal logged' });
    victim.socket.disconnect();
  });

  test("a hello naming a real agent's execution of another project is refused for it; the forged chunk never takes the real one's place (T43)", async () => {
    const gateDir = mkdtempSync(join(tmpdir(), 'kapitan-t43-'));
    const gate = join(gateDir, 'go');
    const agent = await startOnlineAgent(server.url, b);
    try {
      // The real run writes its seq 0 only once the forger has tried to take it.
      const run = await b.api.createExecution(b.projectId, { script: `while [ ! -e '${gate}' ]; do sleep 0.05; done; echo real`, targets: { machineIds: [agent.machineId] } });
      const id = run.executions[0].id;
      await waitFor(async () => (await b.api.getExecution(id)).status === 'running', { timeoutMs: 20_000, message: 'the real run to start' });

      const forger = await enrolRaw(server.url, a);
      const socket = await connectAgentSocket(server.url, forger.credential);
      const ack = await hello(socket, [id.toUpperCase()]);
      expect(ack).toMatchObject({ ok: true, refused: [{ executionId: id, code: 'not_found' }] });
      const out = await emitWithAck(socket, AgentEvents.executionOutput, { executionId: id, chunks: [{ seq: 0, stream: 'stdout', data: 'forged\n' }] });
      expect(out).toMatchObject({ ok: false, error: { code: 'not_found' } });
      await waitFor(() => /hello named executions that are not its own/.test(server.logs()), { timeoutMs: 5000, message: 'refusal logged' });
      socket.disconnect();

      writeFileSync(gate, '');
      expect((await waitForFinal(b, id)).status).toBe('succeeded');
      expect(await b.api.getExecutionLogText(id)).toBe('real\n');
    } finally {
      await agent.dispose();
      rmSync(gateDir, { recursive: true, force: true });
    }
  });

  test('malformed payloads, a missing ack and unknown events: error acks, nothing changed, the socket stays healthy', async () => {
    const { socket, executionId } = await machineWithExecution(a);
    const bad: [string, unknown][] = [
      [AgentEvents.executionOutput, 'a string'],
      [AgentEvents.executionOutput, null],
      [AgentEvents.executionOutput, { executionId, chunks: [] }],
      [AgentEvents.executionOutput, { executionId, chunks: [{ seq: -1, stream: 'stdout', data: 'x' }] }],
      [AgentEvents.executionOutput, { executionId, chunks: [{ seq: 0, stream: 'stdin', data: 'x' }] }],
      [AgentEvents.executionOutput, { executionId, chunks: [{ seq: 0, stream: 'stdout', data: 'x'.repeat(LIMITS.chunkDataMax + 1) }] }],
      [AgentEvents.executionOutput, { executionId, chunks: Array.from({ length: LIMITS.chunksPerMessageMax + 1 }, (_, i) => ({ seq: i, stream: 'stdout', data: 'x' })) }],
      [AgentEvents.executionStarted, { executionId: 'not-a-uuid', startedAt: 'yesterday' }],
      [AgentEvents.executionFinished, { executionId, status: 'exploded', exitCode: 0, signal: null, finishedAt: new Date().toISOString(), lastSeq: 0 }],
      [AgentEvents.heartbeat, { at: 'now' }],
      [AgentEvents.hello, { facts: { hostname: 1 } }],
    ];
    for (const [event, payload] of bad) {
      const ack = await emitWithAck(socket as never, event as never, payload as never);
      expect(ack).toMatchObject({ ok: false, error: { code: 'validation_failed' } });
    }
    // No ack callback, and an event nobody declared: ignored, socket and server fine.
    (socket as unknown as Socket).emit(AgentEvents.executionOutput, { executionId, chunks: [{ seq: 0, stream: 'stdout', data: 'x' }] });
    (socket as unknown as Socket).emit('bogus:event', { a: 1 }, () => undefined);
    expect(await emitWithAck(socket, AgentEvents.heartbeat, { at: new Date().toISOString() })).toEqual({ ok: true });
    expect(socket.connected).toBe(true);
    const exec = await a.api.getExecution(executionId);
    expect(exec.status).toBe('dispatched');
    socket.disconnect();
  });

  test('a message over the payload limit drops that socket only; the server stays healthy', async () => {
    const one = await machineWithExecution(a);
    const other = await machineWithExecution(a);
    const dropped = waitForSocketEvent({ socket: one.socket as unknown as Socket, event: 'disconnect', failOnDisconnect: false });
    (one.socket as unknown as Socket).emit(AgentEvents.executionOutput, {
      executionId: one.executionId,
      chunks: [{ seq: 0, stream: 'stdout', data: 'x'.repeat(LIMITS.socketMessageMaxBytes + 10) }],
    });
    await dropped;
    expect(await emitWithAck(other.socket, AgentEvents.heartbeat, { at: new Date().toISOString() })).toEqual({ ok: true });
    expect((await a.api.request('GET', '/api/health')).status).toBe(200);
    expect((await a.api.getExecutionLog(one.executionId)).chunks).toEqual([]);
    other.socket.disconnect();
  });

  test('an agent flooding past its rate limit is throttled, then disconnected; others are unaffected', async () => {
    const flooder = await machineWithExecution(a);
    const calm = await machineWithExecution(a);
    const s = flooder.socket as unknown as Socket;
    const dropped = waitForSocketEvent({ socket: s, event: 'disconnect', timeoutMs: 20_000, failOnDisconnect: false });
    const acks: { ok: boolean; error?: { code: string } }[] = [];
    for (let i = 0; i < 2000 && s.connected; i++) s.emit(AgentEvents.heartbeat, { at: new Date().toISOString() }, (ack: never) => acks.push(ack));
    await dropped;
    expect(acks.some((x) => x.ok)).toBe(true);
    expect(acks.some((x) => !x.ok && x.error?.code === 'too_many_requests')).toBe(true);
    expect(await emitWithAck(calm.socket, AgentEvents.heartbeat, { at: new Date().toISOString() })).toEqual({ ok: true });
    await waitFor(() => /flooding past its rate limit/.test(server.logs()), { timeoutMs: 5000, message: 'flood logged' });
    calm.socket.disconnect();
  });

  test('chunks out of order, repeated, with a gap and far ahead: stored in order, once each, the gap visible', async () => {
    const { socket, executionId } = await machineWithExecution(a);
    const send = (seq: number, data: string) =>
      emitWithAck(socket, AgentEvents.executionOutput, { executionId, chunks: [{ seq, stream: seq % 2 ? 'stderr' : 'stdout', data }] });
    for (const [seq, data] of [[2, 'c'], [0, 'a'], [0, 'A-again'], [1, 'b'], [2, 'c-again'], [5, 'f'], [1_000_000, 'far']] as const) {
      expect(await send(seq, data)).toMatchObject({ ok: true });
    }
    await emitWithAck(socket, AgentEvents.executionStarted, { executionId, startedAt: new Date().toISOString() });
    const fin = await emitWithAck(socket, AgentEvents.executionFinished, {
      executionId,
      status: 'succeeded',
      exitCode: 0,
      signal: null,
      finishedAt: new Date().toISOString(),
      lastSeq: 1_000_000,
    });
    expect(fin).toEqual({ ok: true });
    const log = await a.api.getExecutionLog(executionId);
    expect(log.chunks.map((c) => [c.seq, c.data])).toEqual([[0, 'a'], [1, 'b'], [2, 'c'], [5, 'f'], [1_000_000, 'far']]);
    expect(log.gaps).toEqual([{ fromSeq: 3, toSeq: 4 }, { fromSeq: 6, toSeq: 999_999 }]);
    expect(log.complete).toBe(false);
    const text = await a.api.getExecutionLogText(executionId);
    expect(text).toBe('abc\n[kapitan: output chunks 3-4 are missing]\nf\n[kapitan: output chunks 6-999999 are missing]\nfar');
    // A second finish changes nothing (exactly once from the user's view).
    await emitWithAck(socket, AgentEvents.executionFinished, {
      executionId,
      status: 'failed',
      exitCode: 9,
      signal: null,
      finishedAt: new Date().toISOString(),
      lastSeq: 0,
    });
    expect(await a.api.getExecution(executionId)).toMatchObject({ status: 'succeeded', exitCode: 0, lastSeq: 1_000_000 });
    socket.disconnect();
  });

  test('delivery is at-least-once: work is re-sent on every hello until it starts, and one start counts', async () => {
    const enrol = await enrolRaw(server.url, a);
    const run = await a.api.createExecution(a.projectId, { script: 'echo once', targets: { machineIds: [enrol.machineId] } });
    const id = run.executions[0].id;
    expect(run.executions[0].status).toBe('queued');
    for (let i = 0; i < 2; i++) {
      const socket = await connectAgentSocket(server.url, enrol.credential);
      const got = waitForSocketEvent({ socket, event: ServerToAgentEvents.dispatch, match: (d) => d.executionId === id });
      await hello(socket);
      await got;
      socket.disconnect();
    }
    const socket = await connectAgentSocket(server.url, enrol.credential);
    const got = waitForSocketEvent({ socket, event: ServerToAgentEvents.dispatch, match: (d) => d.executionId === id });
    await hello(socket);
    await got;
    const startedAt = new Date().toISOString();
    expect(await emitWithAck(socket, AgentEvents.executionStarted, { executionId: id, startedAt })).toEqual({ ok: true });
    expect(await emitWithAck(socket, AgentEvents.executionStarted, { executionId: id, startedAt: new Date(Date.now() + 5000).toISOString() })).toEqual({ ok: true });
    const exec = await a.api.getExecution(id);
    expect(exec.status).toBe('running');
    expect(exec.startedAt).toBe(startedAt);
    socket.disconnect();
  });
});
