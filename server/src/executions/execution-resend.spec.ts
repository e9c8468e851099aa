/**
 * A dispatch is an emit nobody acknowledges: if it reaches no socket the
 * work must still get to the agent without waiting for a reconnect. The
 * node holding the machine sends what is dispatched and not started again,
 * at most once per period, and only while it holds the machine (both
 * databases, a real agent socket).
 */
import { AgentEvents, ServerToAgentEvents, type AgentHelloAck, type ExecutionDispatch } from '@kapitan/shared';
import { Repository } from 'typeorm';
import { createTestApp, describeBothDatabases, TestApp } from '../testing/test-app';
import { closeSockets, connectAgent, emitWithAck, enrolMachine, helloBody, nextEvent, record, runOn, setupProject, type SpecProject } from '../testing/sockets';
import { ExecutionLifecycleService, RESEND_UNSTARTED_AFTER_MS } from './execution-lifecycle.service';
import { ExecutionEntity } from './execution.entity';

describeBothDatabases('dispatched work that did not start is sent again', (database) => {
  let t: TestApp;
  let p: SpecProject;
  let lifecycle: ExecutionLifecycleService;
  let rows: Repository<ExecutionEntity>;

  beforeAll(async () => {
    t = await createTestApp({ database });
    p = await setupProject(t);
    lifecycle = t.app.get(ExecutionLifecycleService);
    rows = t.db.getRepository(ExecutionEntity);
  });
  afterEach(() => closeSockets());
  afterAll(() => t?.close());

  /** As if the first dispatch had been sent this long ago (and been lost). */
  const age = (id: string, ms: number) => rows.update({ id }, { dispatchedAt: new Date(Date.now() - ms) });

  it('resends to the holding socket once per period until it starts; then never again', async () => {
    const m = await enrolMachine(t, p);
    const agent = await connectAgent(t.url, m.credential);
    expect((await emitWithAck<AgentHelloAck>(agent, AgentEvents.hello, helloBody())).ok).toBe(true);
    const dispatches = record<ExecutionDispatch>(agent, ServerToAgentEvents.dispatch);
    const first = nextEvent<ExecutionDispatch>(agent, ServerToAgentEvents.dispatch);
    const id = await runOn(t, p, m.machineId);
    expect((await first).executionId).toBe(id);

    // Younger than the period: not due.
    expect(await lifecycle.resendUnstarted()).toBe(0);

    await age(id, RESEND_UNSTARTED_AFTER_MS + 1_000);
    const again = nextEvent<ExecutionDispatch>(agent, ServerToAgentEvents.dispatch);
    expect(await lifecycle.resendUnstarted()).toBe(1);
    expect(await again).toMatchObject({ executionId: id, script: 'echo hi' });
    // Once per period, not once per sweep.
    expect(await lifecycle.resendUnstarted()).toBe(0);
    expect(await lifecycle.resendUnstarted(Date.now() + RESEND_UNSTARTED_AFTER_MS + 1_000)).toBe(1);
    await nextEvent(agent, ServerToAgentEvents.dispatch, (d: ExecutionDispatch) => d.executionId === id);

    expect((await emitWithAck(agent, AgentEvents.executionStarted, { executionId: id, startedAt: new Date().toISOString() })).ok).toBe(true);
    expect(await lifecycle.resendUnstarted(Date.now() + 10 * RESEND_UNSTARTED_AFTER_MS)).toBe(0);
    expect(dispatches.map((d) => d.executionId)).toEqual([id, id, id]);
  });

  it('a node that does not hold the machine sends nothing: the agent gets it at its next hello instead', async () => {
    const m = await enrolMachine(t, p);
    const agent = await connectAgent(t.url, m.credential);
    expect((await emitWithAck<AgentHelloAck>(agent, AgentEvents.hello, helloBody())).ok).toBe(true);
    const first = nextEvent<ExecutionDispatch>(agent, ServerToAgentEvents.dispatch);
    const id = await runOn(t, p, m.machineId);
    await first;
    await age(id, RESEND_UNSTARTED_AFTER_MS + 1_000);
    agent.disconnect();
    // The close is handled asynchronously on the server: wait until it has let go of the machine.
    for (const deadline = Date.now() + 5_000; ; ) {
      const [machine] = await t.db.query('SELECT status FROM machines WHERE id = ?', [m.machineId]);
      if (machine.status === 'offline') break;
      if (Date.now() > deadline) throw new Error('the machine never went offline');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(await lifecycle.resendUnstarted(Date.now() + 10 * RESEND_UNSTARTED_AFTER_MS)).toBe(0);
    expect((await rows.findOneByOrFail({ id })).status).toBe('dispatched');

    const back = await connectAgent(t.url, m.credential);
    const planned = nextEvent<ExecutionDispatch>(back, ServerToAgentEvents.dispatch);
    expect((await emitWithAck<AgentHelloAck>(back, AgentEvents.hello, helloBody())).ok).toBe(true);
    expect((await planned).executionId).toBe(id);
  });
});
