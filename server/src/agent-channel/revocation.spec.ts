/**
 * A machine revoked, or its project deleted, while its agent is connected
 * (threat model T6, T46), on both databases with real sockets: the agent is
 * told why (`agent:revoked`) and dropped, its credential is refused at the
 * handshake with the final `machine_revoked`, and a report that slips in
 * before the drop reaches it (another node's socket) gets that final code
 * instead of "send again later", with nothing stored.
 */
import { AgentEvents, ServerToAgentEvents, type AgentHelloAck, type AgentRevoked, type ExecutionDispatch } from '@kapitan/shared';
import type { Socket } from 'socket.io-client';
import { bearer, createTestApp, describeBothDatabases, TestApp } from '../testing/test-app';
import { closeSockets, connectAgent, emitWithAck, enrolMachine, helloBody, nextEvent, runOn, setupProject } from '../testing/sockets';

type AnyAck = { ok: boolean; error?: { code: string; message: string } };

describeBothDatabases('revocation on /agent', (database) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({ database });
  });
  afterEach(() => closeSockets());
  afterAll(() => t?.close());

  async function connectedWithRun() {
    const p = await setupProject(t);
    const m = await enrolMachine(t, p);
    const socket = await connectAgent(t.url, m.credential);
    expect((await emitWithAck<AgentHelloAck>(socket, AgentEvents.hello, helloBody())).ok).toBe(true);
    const dispatched = nextEvent<ExecutionDispatch>(socket, ServerToAgentEvents.dispatch);
    const executionId = await runOn(t, p, m.machineId, 'sleep 100');
    await dispatched;
    expect(await emitWithAck<AnyAck>(socket, AgentEvents.executionStarted, { executionId, startedAt: new Date().toISOString() })).toEqual({ ok: true });
    return { p, ...m, socket, executionId };
  }

  /** What the socket hears from now on: the revocation's reason, then the drop, in that order. */
  const revocation = (socket: Socket) =>
    new Promise<{ order: string[]; reason: string }>((resolve, reject) => {
      const order: string[] = [];
      let reason = '';
      const timer = setTimeout(() => reject(new Error(`not dropped within 5 s (heard: ${order.join(', ')})`)), 5_000);
      socket.on(ServerToAgentEvents.revoked, (p: AgentRevoked) => {
        order.push('revoked');
        reason = p.reason;
      });
      socket.once('disconnect', () => {
        clearTimeout(timer);
        order.push('disconnect');
        resolve({ order, reason });
      });
    });
  const handshakeRefusal = (credential: string) =>
    connectAgent(t.url, credential).then(
      () => {
        throw new Error('the handshake was accepted');
      },
      (err: Error & { data?: { code: string; message: string } }) => err.data,
    );
  const chunkCount = async (executionId: string) => Number((await t.db.query(`SELECT COUNT(*) AS n FROM execution_chunks WHERE executionId = ?`, [executionId]))[0].n);

  test('deleting the project tells its connected agent why, drops it, and refuses its credential for good', async () => {
    const a = await connectedWithRun();
    const bystander = await connectedWithRun(); // another project's agent: untouched
    const heard = revocation(a.socket);
    await t.http.delete(`/api/projects/${a.p.projectId}`).set(bearer(a.p.owner.token)).expect(204);
    expect(await heard).toEqual({ order: ['revoked', 'disconnect'], reason: expect.stringMatching(/project .*deleted/) });
    expect(await handshakeRefusal(a.credential)).toMatchObject({ code: 'machine_revoked', message: expect.stringMatching(/enrol it again/) });
    expect(bystander.socket.connected).toBe(true);
    expect(await emitWithAck(bystander.socket, AgentEvents.executionOutput, { executionId: bystander.executionId, chunks: [{ seq: 0, stream: 'stdout', data: 'fine\n' }] })).toEqual({ ok: true, stored: 1 });
  });

  test('revoking (deleting) the machine tells its agent why, drops it, and refuses its credential for good', async () => {
    const a = await connectedWithRun();
    const heard = revocation(a.socket);
    await t.http.delete(`/api/projects/${a.p.projectId}/machines/${a.machineId}`).set(bearer(a.p.owner.token)).expect(204);
    expect(await heard).toEqual({ order: ['revoked', 'disconnect'], reason: expect.stringMatching(/machine was revoked/) });
    expect(await handshakeRefusal(a.credential)).toMatchObject({ code: 'machine_revoked' });
  });

  test('a report that reaches a socket before its drop (the deletion committed on another node) is refused for good, nothing stored', async () => {
    const a = await connectedWithRun();
    // The rows go as a deletion on another node would take them; this node has not heard of it yet.
    await t.db.query(`DELETE FROM projects WHERE id = ?`, [a.p.projectId]);
    expect(a.socket.connected).toBe(true);
    const ack = await emitWithAck<AnyAck>(a.socket, AgentEvents.executionOutput, { executionId: a.executionId, chunks: [{ seq: 0, stream: 'stdout', data: 'late\n' }] });
    if (database === 'sqlite') expect(ack).toMatchObject({ ok: false, error: { code: 'machine_revoked' } });
    // MySQL's INSERT IGNORE (the output writer's, for repeated chunks) also skips a row whose execution is gone:
    // answered as done, so the agent does not send it again either; stored, it is not.
    else expect(ack).toEqual({ ok: true, stored: 1 });
    expect(await chunkCount(a.executionId)).toBe(0);
  });

  test("a malformed handshake is still plain unauthenticated: only a refused credential is final", async () => {
    const refused = await connectAgent(t.url, '').then(
      () => null,
      (err: Error & { data?: { code: string } }) => err.data,
    );
    expect(refused).toMatchObject({ code: 'unauthenticated' });
  });
});
