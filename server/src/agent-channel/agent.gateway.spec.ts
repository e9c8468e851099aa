/**
 * The `/agent` namespace against the real app with real socket.io clients,
 * on both databases: what an agent may claim in its hello, what it may then
 * report, how the hello plans its work, and its rate limit
 * (threat model T10, T11, T15, T43; design invariants 1, 2 and 4).
 */
import { AgentEvents, LiveClientEvents, LiveServerEvents, ServerToAgentEvents, type AgentHelloAck, type ExecutionDispatch, type LiveOutputEvent } from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import { bearer, createTestApp, describeBothDatabases, TestApp, waitFor } from '../testing/test-app';
import { closeSockets, connectAgent, connectLive, emitWithAck, enrolMachine, helloBody, nextEvent, runOn, setupProject, type SpecProject } from '../testing/sockets';

type AnyAck = { ok: boolean; error?: { code: string }; stored?: number };

describeBothDatabases('agent gateway', (database) => {
  let t: TestApp;
  let a: SpecProject;
  let b: SpecProject;

  beforeAll(async () => {
    // 5 events a second, bursts of 50: room for every test's traffic, and a flood is quick to reach.
    t = await createTestApp({ database, env: { KAPITAN_AGENT_EVENTS_PER_SECOND: '5' } });
    a = await setupProject(t, 'a');
    b = await setupProject(t, 'b');
  });
  afterEach(() => closeSockets());
  afterAll(() => t?.close());

  const chunks = async (executionId: string): Promise<{ seq: number; data: string }[]> =>
    ((await t.db.query(`SELECT seq, data FROM execution_chunks WHERE executionId = ? ORDER BY seq`, [executionId])) as { seq: unknown; data: string }[]).map((r) => ({
      seq: Number(r.seq), // a BIGINT comes back from mysql2 as a string
      data: r.data,
    }));
  const status = async (p: SpecProject, executionId: string): Promise<string> =>
    (await t.http.get(`/api/executions/${executionId}`).set(bearer(p.owner.token)).expect(200)).body.status;

  /** A machine of `p`, online, with one execution dispatched to it. */
  async function onlineWithRun(p: SpecProject) {
    const m = await enrolMachine(t, p);
    const socket = await connectAgent(t.url, m.credential);
    expect((await emitWithAck<AgentHelloAck>(socket, AgentEvents.hello, helloBody())).ok).toBe(true);
    const dispatched = nextEvent<ExecutionDispatch>(socket, ServerToAgentEvents.dispatch);
    const executionId = await runOn(t, p, m.machineId);
    expect((await dispatched).executionId).toBe(executionId);
    return { ...m, socket, executionId };
  }

  test("a hello naming another project's execution is refused for it; the forger's reports change nothing and the real chunk is stored", async () => {
    const real = await onlineWithRun(b);
    const forger = await enrolMachine(t, a);
    const socket = await connectAgent(t.url, forger.credential);
    const unknown = randomUUID();
    const ack = await emitWithAck<AgentHelloAck>(socket, AgentEvents.hello, helloBody([real.executionId.toUpperCase(), unknown]));
    expect(ack).toMatchObject({ ok: true, machineId: forger.machineId });
    expect(ack.ok && ack.refused).toEqual([
      { executionId: real.executionId, code: 'not_found' },
      { executionId: unknown, code: 'not_found' },
    ]);

    const output = await emitWithAck<AnyAck>(socket, AgentEvents.executionOutput, { executionId: real.executionId, chunks: [{ seq: 0, stream: 'stdout', data: 'forged' }] });
    const started = await emitWithAck<AnyAck>(socket, AgentEvents.executionStarted, { executionId: real.executionId, startedAt: new Date().toISOString() });
    const finished = await emitWithAck<AnyAck>(socket, AgentEvents.executionFinished, {
      executionId: real.executionId, status: 'succeeded', exitCode: 0, signal: null, finishedAt: new Date().toISOString(), lastSeq: 0,
    });
    for (const r of [output, started, finished]) expect(r).toMatchObject({ ok: false, error: { code: 'not_found' } });
    expect(await chunks(real.executionId)).toEqual([]);
    expect(await status(b, real.executionId)).toBe('dispatched');

    // The machine the run belongs to still writes its seq 0: nothing of the forger's took that place.
    expect(await emitWithAck<AnyAck>(real.socket, AgentEvents.executionOutput, { executionId: real.executionId, chunks: [{ seq: 0, stream: 'stdout', data: 'real' }] })).toEqual({ ok: true, stored: 1 });
    expect(await chunks(real.executionId)).toEqual([{ seq: 0, data: 'real' }]);
  });

  test('a hello naming its own executions is accepted without refusals, and their reports are accepted', async () => {
    const own = await onlineWithRun(a);
    const again = await connectAgent(t.url, own.credential); // the newest socket holds the machine
    const ack = await emitWithAck<AgentHelloAck>(again, AgentEvents.hello, helloBody([own.executionId]));
    expect(ack.ok).toBe(true);
    expect(ack).not.toHaveProperty('refused');
    expect(await emitWithAck<AnyAck>(again, AgentEvents.executionStarted, { executionId: own.executionId, startedAt: new Date().toISOString() })).toEqual({ ok: true });
    expect(await status(a, own.executionId)).toBe('running');
  });

  test('an upper-case execution id in a report is the same execution: it reaches viewers of its room and is stored under its id', async () => {
    const own = await onlineWithRun(a);
    const viewer = await connectLive(t.url, a.owner.token);
    expect(await emitWithAck<AnyAck>(viewer, LiveClientEvents.subscribeExecution, { executionId: own.executionId.toUpperCase() })).toMatchObject({ ok: true });
    const live = nextEvent<LiveOutputEvent>(viewer, LiveServerEvents.output);
    const upper = own.executionId.toUpperCase();
    expect(await emitWithAck<AnyAck>(own.socket, AgentEvents.executionOutput, { executionId: upper, chunks: [{ seq: 0, stream: 'stdout', data: 'hi\n' }] })).toEqual({ ok: true, stored: 1 });
    expect(await live).toEqual({ executionId: own.executionId, chunks: [{ seq: 0, stream: 'stdout', data: 'hi\n' }] });
    expect(await chunks(own.executionId)).toEqual([{ seq: 0, data: 'hi\n' }]);
  });

  test('the hello plan: running work the agent no longer holds is lost, queued work is dispatched, a cancel asked meanwhile is sent', async () => {
    const first = await onlineWithRun(a);
    expect(await emitWithAck<AnyAck>(first.socket, AgentEvents.executionStarted, { executionId: first.executionId, startedAt: new Date().toISOString() })).toEqual({ ok: true });
    const kept = await runOn(t, a, first.machineId, 'sleep 100');
    expect(await emitWithAck<AnyAck>(first.socket, AgentEvents.executionStarted, { executionId: kept, startedAt: new Date().toISOString() })).toEqual({ ok: true });
    first.socket.close();
    await waitFor('the machine to go offline', async () => {
      const m = await t.http.get(`/api/projects/${a.projectId}/machines/${first.machineId}`).set(bearer(a.owner.token)).expect(200);
      return m.body.status === 'offline' || undefined;
    }, 5_000);
    const queued = await runOn(t, a, first.machineId);
    expect(await status(a, queued)).toBe('queued');
    await t.http.post(`/api/executions/${kept}/cancel`).set(bearer(a.owner.token)).expect(202);

    const socket = await connectAgent(t.url, first.credential);
    const dispatched = nextEvent<ExecutionDispatch>(socket, ServerToAgentEvents.dispatch);
    const cancelled = nextEvent<{ executionId: string }>(socket, ServerToAgentEvents.cancel);
    expect((await emitWithAck<AgentHelloAck>(socket, AgentEvents.hello, helloBody([kept]))).ok).toBe(true);
    expect((await dispatched).executionId).toBe(queued);
    expect((await cancelled).executionId).toBe(kept);
    expect(await status(a, first.executionId)).toBe('lost');
    expect(await status(a, queued)).toBe('dispatched');
    expect(await status(a, kept)).toBe('running');
  });

  test('a flood past the rate limit is refused with too_many_requests and changes nothing; other agents are unaffected', async () => {
    const m = await enrolMachine(t, a);
    const socket = await connectAgent(t.url, m.credential);
    const acks = await Promise.all(Array.from({ length: 60 }, () => emitWithAck<AnyAck>(socket, AgentEvents.heartbeat, { at: new Date().toISOString() })));
    const refused = acks.filter((r) => !r.ok);
    expect(acks.filter((r) => r.ok).length).toBeLessThanOrEqual(51);
    expect(refused.length).toBeGreaterThanOrEqual(9);
    for (const r of refused) expect(r.error?.code).toBe('too_many_requests');
    // A hello refused by the bucket marks nothing online.
    const hello = await emitWithAck<AgentHelloAck>(socket, AgentEvents.hello, helloBody());
    expect(hello).toMatchObject({ ok: false, error: { code: 'too_many_requests' } });
    const row = await t.http.get(`/api/projects/${a.projectId}/machines/${m.machineId}`).set(bearer(a.owner.token)).expect(200);
    expect(row.body.status).toBe('offline');

    const other = await enrolMachine(t, a);
    const fresh = await connectAgent(t.url, other.credential);
    expect((await emitWithAck<AgentHelloAck>(fresh, AgentEvents.hello, helloBody())).ok).toBe(true);
  });
});
