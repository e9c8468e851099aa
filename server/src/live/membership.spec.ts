/**
 * A member who may no longer watch a project hears nothing more of it, from
 * any room: removed (the project room and every execution room it joined),
 * logged out (the socket is dropped). A demoted member keeps watching: every
 * role may view (threat model T9, T35). Real app, real sockets, both databases.
 */
import { AgentEvents, LiveClientEvents, LiveServerEvents, Rooms, ServerToAgentEvents, type ExecutionDispatch } from '@kapitan/shared';
import type { Socket } from 'socket.io-client';
import type { Namespace } from 'socket.io';
import { bearer, createTestApp, describeBothDatabases, signupUser, TestApp, waitFor } from '../testing/test-app';
import { closeSockets, connectAgent, connectLive, emitWithAck, enrolMachine, helloBody, nextEvent, record, runOn, setupProject, type SpecProject } from '../testing/sockets';
import { LiveGateway } from './live.gateway';

type AnyAck = { ok: boolean; error?: { code: string } };
const EVENTS = [LiveServerEvents.output, LiveServerEvents.execution, LiveServerEvents.machine] as const;

describeBothDatabases('live membership', (database) => {
  let t: TestApp;
  let p: SpecProject;
  let agent: Socket;
  let machineId: string;

  beforeAll(async () => {
    t = await createTestApp({ database });
    p = await setupProject(t);
    const m = await enrolMachine(t, p);
    machineId = m.machineId;
    agent = await connectAgent(t.url, m.credential);
    expect((await emitWithAck<AnyAck>(agent, AgentEvents.hello, helloBody())).ok).toBe(true);
  });
  afterAll(async () => {
    closeSockets();
    await t?.close();
  });

  /** The server-side rooms of a dashboard socket on this node (the client's socket id is the server's). */
  const roomsOf = (socket: Socket): Set<string> =>
    (t.app.get(LiveGateway) as unknown as { ns: Namespace }).ns.sockets.get(socket.id!)?.rooms ?? new Set();

  async function member(role: 'viewer' | 'operator') {
    const u = await signupUser(t.http);
    await t.http.post(`/api/projects/${p.projectId}/members`).set(bearer(p.owner.token)).send({ email: u.email, role }).expect(201);
    return u;
  }

  /** A run on the machine, dispatched, and `sockets` watching its project and its execution room. */
  async function watchedRun(...sockets: Socket[]): Promise<string> {
    const dispatched = nextEvent<ExecutionDispatch>(agent, ServerToAgentEvents.dispatch);
    const executionId = await runOn(t, p, machineId, 'sleep 60');
    expect((await dispatched).executionId).toBe(executionId);
    for (const s of sockets) {
      expect(await emitWithAck<AnyAck>(s, LiveClientEvents.subscribeProject, { projectId: p.projectId })).toEqual({ ok: true });
      expect(await emitWithAck<AnyAck>(s, LiveClientEvents.subscribeExecution, { executionId })).toMatchObject({ ok: true });
    }
    return executionId;
  }

  /** Output, a status change (start at seq 0, finish after) and a machine change of the project, seen by `control`; then `probe` has had time to get them too. */
  async function projectActivity(executionId: string, seq: number, control: Socket, probe: Socket): Promise<void> {
    const seen = Promise.all(EVENTS.map((event) => nextEvent(control, event)));
    expect(await emitWithAck<AnyAck>(agent, AgentEvents.executionOutput, { executionId, chunks: [{ seq, stream: 'stdout', data: `line ${seq}\n` }] })).toMatchObject({ ok: true });
    if (seq === 0) expect(await emitWithAck<AnyAck>(agent, AgentEvents.executionStarted, { executionId, startedAt: new Date().toISOString() })).toEqual({ ok: true });
    else {
      const finished = { executionId, status: 'succeeded', exitCode: 0, signal: null, finishedAt: new Date().toISOString(), lastSeq: seq };
      expect(await emitWithAck<AnyAck>(agent, AgentEvents.executionFinished, finished)).toEqual({ ok: true });
    }
    await t.http.patch(`/api/projects/${p.projectId}/machines/${machineId}`).set(bearer(p.owner.token)).send({ labels: { seq: String(seq) } }).expect(200);
    await seen;
    // Anything broadcast to `probe` before now is written to it before this ack.
    await emitWithAck(probe, LiveClientEvents.unsubscribeProject, { projectId: '00000000-0000-4000-8000-000000000000' });
  }

  test('a removed member leaves the project room and every execution room: nothing more of the project reaches it', async () => {
    const u = await member('viewer');
    const watcher = await connectLive(t.url, u.token);
    const control = await connectLive(t.url, p.owner.token);
    const executionId = await watchedRun(watcher, control);

    const before = EVENTS.map((e) => record(watcher, e));
    await projectActivity(executionId, 0, control, watcher);
    expect(before.map((r) => r.length)).toEqual([1, 1, 1]); // it was watching, so the test can fail

    await t.http.delete(`/api/projects/${p.projectId}/members/${u.user.id}`).set(bearer(p.owner.token)).expect(204);
    await waitFor('the removed member to leave the rooms', () => ([...roomsOf(watcher)].some((r) => r.startsWith('project:') || r.startsWith('execution:')) ? undefined : true), 5_000);
    const after = EVENTS.map((e) => record(watcher, e));
    await projectActivity(executionId, 1, control, watcher);
    expect(after.map((r) => r.length)).toEqual([0, 0, 0]);
    expect(watcher.connected).toBe(true); // its other projects are its own business

    // And it cannot come back in.
    expect(await emitWithAck<AnyAck>(watcher, LiveClientEvents.subscribeExecution, { executionId })).toMatchObject({ ok: false, error: { code: 'not_found' } });
    expect(await emitWithAck<AnyAck>(watcher, LiveClientEvents.subscribeProject, { projectId: p.projectId })).toMatchObject({ ok: false, error: { code: 'not_found' } });
    expect([...roomsOf(watcher)].filter((r) => r.startsWith('project:') || r.startsWith('execution:'))).toEqual([]);
  });

  test('a demoted member keeps watching (every role may view)', async () => {
    const u = await member('operator');
    const watcher = await connectLive(t.url, u.token);
    const control = await connectLive(t.url, p.owner.token);
    const executionId = await watchedRun(watcher, control);
    await t.http.patch(`/api/projects/${p.projectId}/members/${u.user.id}`).set(bearer(p.owner.token)).send({ role: 'viewer' }).expect(200);
    const seen = EVENTS.map((e) => record(watcher, e));
    await projectActivity(executionId, 0, control, watcher);
    expect(seen.map((r) => r.length)).toEqual([1, 1, 1]);
  });

  test('a logged-out session is dropped at once and hears nothing more', async () => {
    const u = await member('viewer');
    const watcher = await connectLive(t.url, u.token);
    const control = await connectLive(t.url, p.owner.token);
    const executionId = await watchedRun(watcher, control);
    const dropped = nextEvent<string>(watcher, 'disconnect');
    const seen = EVENTS.map((e) => record(watcher, e));
    await t.http.post('/api/auth/logout').set(bearer(u.token)).expect(204);
    expect(await dropped).toBe('io server disconnect');
    const activity = Promise.all(EVENTS.map((event) => nextEvent(control, event)));
    expect(await emitWithAck<AnyAck>(agent, AgentEvents.executionOutput, { executionId, chunks: [{ seq: 0, stream: 'stdout', data: 'x' }] })).toMatchObject({ ok: true });
    expect(await emitWithAck<AnyAck>(agent, AgentEvents.executionStarted, { executionId, startedAt: new Date().toISOString() })).toEqual({ ok: true });
    await t.http.patch(`/api/projects/${p.projectId}/machines/${machineId}`).set(bearer(p.owner.token)).send({ labels: { after: 'logout' } }).expect(200);
    await activity;
    expect(seen.map((r) => r.length)).toEqual([0, 0, 0]);
  });

  test('a socket still in the project room after its membership is gone (eviction not yet run) cannot subscribe to an execution', async () => {
    const u = await member('viewer');
    const watcher = await connectLive(t.url, u.token);
    const control = await connectLive(t.url, p.owner.token);
    const executionId = await watchedRun(control);
    expect(await emitWithAck<AnyAck>(watcher, LiveClientEvents.subscribeProject, { projectId: p.projectId })).toEqual({ ok: true });
    // The membership gone from the database, the eviction that the API's removal would send not (yet) run:
    // the socket still sits in the project's room, which vouches for it only until the room is entered.
    await t.db.query('DELETE FROM project_members WHERE projectId = ? AND userId = ?', [p.projectId, u.user.id]);
    expect(roomsOf(watcher).has(Rooms.project(p.projectId))).toBe(true);
    expect(await emitWithAck<AnyAck>(watcher, LiveClientEvents.subscribeExecution, { executionId })).toMatchObject({ ok: false, error: { code: 'not_found' } });
    expect(roomsOf(watcher).has(Rooms.execution(executionId))).toBe(false);
  });

  test("a stranger's subscriptions are refused and it joins no room", async () => {
    const stranger = await signupUser(t.http);
    const s = await connectLive(t.url, stranger.token);
    const executionId = await watchedRun();
    expect(await emitWithAck<AnyAck>(s, LiveClientEvents.subscribeProject, { projectId: p.projectId })).toMatchObject({ ok: false, error: { code: 'not_found' } });
    expect(await emitWithAck<AnyAck>(s, LiveClientEvents.subscribeExecution, { executionId })).toMatchObject({ ok: false, error: { code: 'not_found' } });
    expect(await emitWithAck<AnyAck>(s, LiveClientEvents.executionHistory, { executionId, fromSeq: 0 })).toMatchObject({ ok: false, error: { code: 'not_found' } });
    expect([...roomsOf(s)].filter((r) => r.startsWith('project:') || r.startsWith('execution:'))).toEqual([]);
  });

  test('a deleted project: every socket leaves its rooms, members and owner alike', async () => {
    const other = await setupProject(t, 'doomed');
    const u = await signupUser(t.http);
    await t.http.post(`/api/projects/${other.projectId}/members`).set(bearer(other.owner.token)).send({ email: u.email, role: 'viewer' }).expect(201);
    const sockets = [await connectLive(t.url, other.owner.token), await connectLive(t.url, u.token)];
    for (const s of sockets) expect(await emitWithAck<AnyAck>(s, LiveClientEvents.subscribeProject, { projectId: other.projectId })).toEqual({ ok: true });
    for (const s of sockets) expect(roomsOf(s).has(`project:${other.projectId}`)).toBe(true);
    await t.http.delete(`/api/projects/${other.projectId}`).set(bearer(other.owner.token)).expect(204);
    await waitFor('every socket to leave the deleted project', () => (sockets.every((s) => !roomsOf(s).has(`project:${other.projectId}`)) ? true : undefined), 5_000);
  });
});
