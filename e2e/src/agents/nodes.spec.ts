/**
 * Two server nodes on one MySQL database and one Redis: the agent on node A,
 * the REST caller and the dashboard on node B. Nothing only one node knows
 * may be authoritative (docs/design.md "Runtime shapes"): the run must reach the
 * agent through A, its output the dashboard through B, and presence read the
 * same on both. (Scale-out proper — node failure, schedules — is a later issue.)
 */
import { randomBytes } from 'node:crypto';
import { AgentEvents, isFinalStatus, LiveClientEvents, LiveServerEvents, ServerToAgentEvents, type ExecutionChunksAck, type ExecutionDispatch, type OutputChunk } from '@kapitan/shared';
import {
  ApiClient,
  collectSocketEvents,
  connectAgentSocket,
  connectLive,
  createTestDatabase,
  describeOrSkip,
  emitWithAck,
  jwtSecret,
  requireMysql,
  redisUrl,
  requireRedis,
  signupUser,
  startAgent,
  startServer,
  waitFor,
  waitForMachineStatus,
  waitForSocketEvent,
  type TestDatabase,
  type TestServer,
} from '../harness';
import { enrolRaw, FACTS, setupProject } from './fixtures';

const REDIS_URL = redisUrl();

describeOrSkip(requireMysql(), requireRedis(REDIS_URL))('two server nodes (MySQL + Redis)', () => {
  let db: TestDatabase;
  let a: TestServer;
  let b: TestServer;

  beforeAll(async () => {
    db = await createTestDatabase();
    const env = { REDIS_URL, JWT_SECRET: jwtSecret(), KAPITAN_SECRETS_KEY: randomBytes(32).toString('base64') };
    a = await startServer({ database: db, env: { ...env, KAPITAN_NODE_ID: 'node-a' }, name: 'node-a' });
    b = await startServer({ database: db, env: { ...env, KAPITAN_NODE_ID: 'node-b' }, name: 'node-b' });
  });
  afterAll(async () => {
    await a?.dispose();
    await b?.dispose();
    await db?.drop();
  });

  test('agent on A, REST and dashboard on B: the run reaches the agent and its output the dashboard, live', async () => {
    const p = await setupProject(b.url, 'nodes');
    const onA = new ApiClient(a.url, p.owner.accessToken); // the same session is good on every node
    const agent = await startAgent({ serverUrl: a.url, token: (await p.api.createEnrolmentToken(p.projectId)).token });
    try {
      await waitForMachineStatus({ api: p.api, projectId: p.projectId, machineId: agent.machineId, status: 'online' });
      await waitForMachineStatus({ api: onA, projectId: p.projectId, machineId: agent.machineId, status: 'online' });
      const live = await connectLive(b.url, p.owner.accessToken);
      expect(await emitWithAck(live, LiveClientEvents.subscribeProject, { projectId: p.projectId })).toEqual({ ok: true });
      const { executions } = await p.api.createExecution(p.projectId, {
        script: 'echo "hello from $KAPITAN_EXECUTION_ID"; sleep 2; echo bye',
        targets: { machineIds: [agent.machineId] },
      });
      const id = executions[0].id;
      const hello = waitForSocketEvent({ socket: live, event: LiveServerEvents.output, match: (e) => e.executionId === id && e.chunks.some((c: OutputChunk) => c.data.includes('hello')), timeoutMs: 15_000 });
      const ack = (await emitWithAck(live, LiveClientEvents.subscribeExecution, { executionId: id, fromSeq: 0 })) as ExecutionChunksAck;
      expect(ack.ok).toBe(true);
      if (!(ack.ok && ack.chunks.some((c) => c.data.includes('hello')))) await hello;
      expect((await p.api.getExecution(id)).status).toBe('running');
      const done = waitForSocketEvent({ socket: live, event: LiveServerEvents.execution, match: (e) => e.execution.id === id && isFinalStatus(e.execution.status), timeoutMs: 15_000 });
      await done;
      expect(await p.api.getExecutionLogText(id)).toBe(`hello from ${id}\nbye\n`);
      // Cancel and revoke issued on B reach the agent's socket on A.
      const long = (await p.api.createExecution(p.projectId, { script: 'sleep 60', targets: { machineIds: [agent.machineId] } })).executions[0].id;
      await waitFor(async () => (await p.api.getExecution(long)).status === 'running', { timeoutMs: 15_000, message: 'long run started' });
      await p.api.cancelExecution(long);
      await waitFor(async () => (await p.api.getExecution(long)).status === 'cancelled', { timeoutMs: 20_000, message: 'cancelled through node A' });
      await p.api.request('DELETE', `/api/projects/${p.projectId}/machines/${agent.machineId}`);
      // Told through Redis by A, the agent stops for good (it no longer redials to be refused).
      await waitFor(() => /the server revoked this machine/.test(agent.logs()), { timeoutMs: 10_000, message: 'agent on A cut off and revoked' });
      expect((await agent.managed.exited).code).toBe(3);
      live.disconnect();
    } finally {
      await agent.dispose();
    }
  });

  test('a member removed through node B stops hearing the run at once on node A, from the execution room too (threat model T35)', async () => {
    const p = await setupProject(b.url, 'evict');
    const member = await signupUser(a.url, 'member');
    await p.api.addMember(p.projectId, { email: member.email, role: 'viewer' });
    const enrol = await enrolRaw(a.url, p);
    const agent = await connectAgentSocket(a.url, enrol.credential);
    expect(await emitWithAck(agent, AgentEvents.hello, { facts: FACTS, activeExecutionIds: [] })).toMatchObject({ ok: true });
    const dispatched = waitForSocketEvent({ socket: agent, event: ServerToAgentEvents.dispatch, timeoutMs: 10_000 });
    const id = (await p.api.createExecution(p.projectId, { script: 'true', targets: { machineIds: [enrol.machineId] } })).executions[0].id;
    expect(((await dispatched) as ExecutionDispatch).executionId).toBe(id);

    const watcher = await connectLive(a.url, member.accessToken);
    const control = await connectLive(a.url, p.owner.accessToken);
    for (const s of [watcher, control]) expect(await emitWithAck(s, LiveClientEvents.subscribeExecution, { executionId: id, fromSeq: 0 })).toMatchObject({ ok: true });
    const heard = collectSocketEvents(watcher, LiveServerEvents.output);
    let seq = 0;
    /** One chunk through node A; resolves once the control socket has it, so the watcher would have it too. */
    const chunk = async (): Promise<number> => {
      const n = seq++;
      const seen = waitForSocketEvent({ socket: control, event: LiveServerEvents.output, match: (e) => e.chunks.some((c: OutputChunk) => c.seq === n), timeoutMs: 10_000 });
      expect(await emitWithAck(agent, AgentEvents.executionOutput, { executionId: id, chunks: [{ seq: n, stream: 'stdout', data: `${n}\n` }] })).toMatchObject({ ok: true });
      await seen;
      await emitWithAck(watcher, LiveClientEvents.unsubscribeProject, { projectId: p.projectId }); // a round trip: anything sent before is in
      return n;
    };
    await chunk();
    expect(heard.events).toHaveLength(1); // it was listening, so the rest can fail

    expect((await p.api.request('DELETE', `/api/projects/${p.projectId}/members/${member.user.id}`)).status).toBe(204);
    // The eviction travels from B through Redis to A: once one chunk no longer reaches the watcher, none does.
    await waitFor(async () => {
      const before = heard.events.length;
      await chunk();
      return heard.events.length === before;
    }, { timeoutMs: 10_000, intervalMs: 50, message: 'the removed member to stop hearing the run' });
    const after = heard.events.length;
    for (let i = 0; i < 3; i++) await chunk();
    expect(heard.events.length).toBe(after);
    expect(await emitWithAck(watcher, LiveClientEvents.subscribeExecution, { executionId: id, fromSeq: 0 })).toMatchObject({ ok: false, error: { code: 'not_found' } });
    for (const s of [watcher, control, agent]) s.disconnect();
  });
});
