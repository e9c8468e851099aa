/**
 * A start the agent sends again (its crash spool replays what it had not
 * seen acknowledged) is answered `ok` from its own machine and changes
 * nothing: no second transition, no announcement, no cancel pushed back. A
 * start for a run that finished or was cancelled meanwhile is still refused
 * (design invariant 1), on both databases through the real `/agent` gateway.
 */
import { AgentEvents, LiveClientEvents, LiveServerEvents, ServerToAgentEvents, type AgentHelloAck, type ExecutionDispatch } from '@kapitan/shared';
import { bearer, createTestApp, describeBothDatabases, TestApp } from '../testing/test-app';
import { closeSockets, connectAgent, connectLive, emitWithAck, enrolMachine, helloBody, nextEvent, record, runOn, setupProject, type SpecProject } from '../testing/sockets';

type AnyAck = { ok: boolean; error?: { code: string } };

describeBothDatabases('a replayed execution:started', (database) => {
  let t: TestApp;
  let p: SpecProject;

  beforeAll(async () => {
    t = await createTestApp({ database });
    p = await setupProject(t);
  });
  afterEach(() => closeSockets());
  afterAll(() => t?.close());

  const row = async (id: string) =>
    (await t.db.query(`SELECT status, startedAt, finishedAt FROM executions WHERE id = ?`, [id]))[0] as { status: string; startedAt: unknown; finishedAt: unknown };

  async function onlineWithRun(script = 'sleep 100') {
    const m = await enrolMachine(t, p);
    const socket = await connectAgent(t.url, m.credential);
    expect((await emitWithAck<AgentHelloAck>(socket, AgentEvents.hello, helloBody())).ok).toBe(true);
    const dispatched = nextEvent<ExecutionDispatch>(socket, ServerToAgentEvents.dispatch);
    const executionId = await runOn(t, p, m.machineId, script);
    await dispatched;
    return { ...m, socket, executionId };
  }

  test('a repeat of an accepted start is ok, changes nothing, announces nothing and pushes no cancel', async () => {
    const { socket, executionId } = await onlineWithRun();
    const first = { executionId, startedAt: '2026-01-01T00:00:00.000Z' };
    expect(await emitWithAck<AnyAck>(socket, AgentEvents.executionStarted, first)).toEqual({ ok: true });
    const before = await row(executionId);
    expect(before.status).toBe('running');

    const viewer = await connectLive(t.url, p.owner.token);
    expect((await emitWithAck<AnyAck>(viewer, LiveClientEvents.subscribeProject, { projectId: p.projectId })).ok).toBe(true);
    const announced = record(viewer, LiveServerEvents.execution);
    const cancels = record(socket, ServerToAgentEvents.cancel);
    // The replay, with the agent's own later clock, twice (two crashes in a row), and once in upper case.
    for (const id of [executionId, executionId, executionId.toUpperCase()]) {
      expect(await emitWithAck<AnyAck>(socket, AgentEvents.executionStarted, { executionId: id, startedAt: new Date().toISOString() })).toEqual({ ok: true });
    }
    expect(await row(executionId)).toEqual(before);
    // A round trip after the replays: anything they had pushed or announced would have arrived by now.
    expect((await emitWithAck<AnyAck>(socket, AgentEvents.heartbeat, { at: new Date().toISOString() })).ok).toBe(true);
    expect((await emitWithAck<AnyAck>(viewer, LiveClientEvents.subscribeProject, { projectId: p.projectId })).ok).toBe(true);
    expect(cancels).toEqual([]);
    expect(announced).toEqual([]);
  });

  test('a replayed start of a finished run is refused with conflict and the run stays finished', async () => {
    const { socket, executionId } = await onlineWithRun('true');
    expect(await emitWithAck<AnyAck>(socket, AgentEvents.executionStarted, { executionId, startedAt: new Date().toISOString() })).toEqual({ ok: true });
    const finished = { executionId, status: 'succeeded', exitCode: 0, signal: null, finishedAt: new Date().toISOString(), lastSeq: -1 };
    expect(await emitWithAck<AnyAck>(socket, AgentEvents.executionFinished, finished)).toEqual({ ok: true });
    const before = await row(executionId);
    expect(before.status).toBe('succeeded');
    expect(await emitWithAck<AnyAck>(socket, AgentEvents.executionStarted, { executionId, startedAt: new Date().toISOString() })).toMatchObject({
      ok: false,
      error: { code: 'conflict' },
    });
    expect(await row(executionId)).toEqual(before);
  });

  test('a start of a run cancelled before it started is refused, and the agent is told to cancel it', async () => {
    const { socket, executionId } = await onlineWithRun();
    const cancel = nextEvent<{ executionId: string }>(socket, ServerToAgentEvents.cancel);
    await t.http.post(`/api/executions/${executionId}/cancel`).set(bearer(p.owner.token)).expect(202);
    expect((await cancel).executionId).toBe(executionId);
    const before = await row(executionId);
    expect(before.status).toBe('cancelled');
    const again = nextEvent<{ executionId: string }>(socket, ServerToAgentEvents.cancel);
    expect(await emitWithAck<AnyAck>(socket, AgentEvents.executionStarted, { executionId, startedAt: new Date().toISOString() })).toMatchObject({
      ok: false,
      error: { code: 'conflict' },
    });
    expect((await again).executionId).toBe(executionId);
    expect(await row(executionId)).toEqual(before);
  });

  test("another machine's replay of the start is refused as not found and changes nothing", async () => {
    const { socket, executionId } = await onlineWithRun();
    expect(await emitWithAck<AnyAck>(socket, AgentEvents.executionStarted, { executionId, startedAt: new Date().toISOString() })).toEqual({ ok: true });
    const before = await row(executionId);
    const other = await enrolMachine(t, p);
    const stranger = await connectAgent(t.url, other.credential);
    expect((await emitWithAck<AgentHelloAck>(stranger, AgentEvents.hello, helloBody())).ok).toBe(true);
    expect(await emitWithAck<AnyAck>(stranger, AgentEvents.executionStarted, { executionId, startedAt: new Date().toISOString() })).toMatchObject({
      ok: false,
      error: { code: 'not_found' },
    });
    expect(await row(executionId)).toEqual(before);
  });
});
