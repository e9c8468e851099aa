/**
 * A node told to stop drains first (docs/design.md "Stopping a node"), on
 * both databases with real sockets: it stops listening, /api/health answers
 * 503 `draining` on a connection still open, its agents and dashboards hear
 * `server:draining` before the drop, a report the agent sent just before is
 * committed before the drain ends.
 */
import http from 'node:http';
import type { Server } from 'node:net';
import { AgentEvents, LiveServerEvents, ServerToAgentEvents, type AgentHelloAck, type ExecutionDispatch, type ServerDraining } from '@kapitan/shared';
import type { Socket } from 'socket.io-client';
import { createTestApp, describeBothDatabases, TestApp } from '../testing/test-app';
import { closeSockets, connectAgent, connectLive, emitWithAck, enrolMachine, helloBody, nextEvent, runOn, setupProject } from '../testing/sockets';
import { OutputWriter } from '../executions/output-writer.service';
import { DrainService } from './drain.service';

/** What the socket hears from now on: the draining notice, then the drop, in that order. */
const drained = (socket: Socket) =>
  new Promise<{ order: string[]; reason: string }>((resolve, reject) => {
    const order: string[] = [];
    let reason = '';
    const timer = setTimeout(() => reject(new Error(`not dropped within 5 s (heard: ${order.join(', ')})`)), 5_000);
    socket.on(ServerToAgentEvents.draining, (p: ServerDraining) => {
      order.push('draining');
      reason = p.reason;
    });
    socket.once('disconnect', (why) => {
      clearTimeout(timer);
      order.push(`disconnect:${why}`);
      resolve({ order, reason });
    });
  });

function healthOn(url: string, path = '/api/health'): Promise<{ status: number; body: unknown; connection?: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(`${url}${path}`, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text), connection: res.headers.connection }));
      })
      .on('error', reject);
  });
}

describeBothDatabases('draining a node that is told to stop', (database) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp({ database });
  });
  afterEach(() => closeSockets());
  afterAll(() => t?.close());

  it('stops listening, answers health 503, moves agents and dashboards, and commits what was in flight', async () => {
    const p = await setupProject(t);
    const m = await enrolMachine(t, p);
    const agent = await connectAgent(t.url, m.credential);
    expect((await emitWithAck<AgentHelloAck>(agent, AgentEvents.hello, helloBody())).ok).toBe(true);
    const dispatched = nextEvent<ExecutionDispatch>(agent, ServerToAgentEvents.dispatch);
    const executionId = await runOn(t, p, m.machineId, 'sleep 100');
    await dispatched;
    expect(await emitWithAck(agent, AgentEvents.executionStarted, { executionId, startedAt: new Date().toISOString() })).toEqual({ ok: true });
    const live = await connectLive(t.url, p.owner.token);
    // The same Express app on a listener of its own, which the drain does not close: what a request that still
    // reaches the node (one already under way on a kept-alive connection) is answered.
    const side = http.createServer(t.app.getHttpAdapter().getInstance());
    await new Promise<void>((resolve) => side.listen(0, '127.0.0.1', resolve));
    const sideUrl = `http://127.0.0.1:${(side.address() as { port: number }).port}`;
    expect((await healthOn(sideUrl)).status).toBe(200);
    expect((await healthOn(sideUrl, '/api/health/live')).status).toBe(200);

    const agentHeard = drained(agent);
    const liveHeard = drained(live);
    // Output the node is still writing when the drain starts (held at the writer's door until released): the
    // drain must wait for its rows, though its ack is lost with the socket (the agent sends it again elsewhere).
    const writer = t.app.get(OutputWriter);
    const write = writer.write.bind(writer);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const atGate = new Promise<void>((resolve) => (entered = resolve));
    const spy = jest.spyOn(writer, 'write').mockImplementation((...args) => {
      entered();
      return gate.then(() => write(...args));
    });
    try {
      agent.emit(AgentEvents.executionOutput, { executionId, chunks: [{ seq: 0, stream: 'stdout', data: 'last words\n' }] }, () => undefined);
      await atGate;
      const listener = t.app.getHttpServer() as Server;
      let done = false;
      const draining = t.app.get(DrainService).drain([listener]).then(() => (done = true));
      expect(await agentHeard).toEqual({ order: ['draining', 'disconnect:io server disconnect'], reason: expect.stringMatching(/stopping/) });
      expect((await liveHeard).order).toEqual(['draining', 'disconnect:io server disconnect']);
      expect(listener.listening).toBe(false);
      expect(done).toBe(false); // the write is still held: the drain waits for it
      release();
      await draining;
    } finally {
      release();
      spy.mockRestore();
    }
    const rows = await t.db.query(`SELECT data FROM execution_chunks WHERE executionId = ?`, [executionId]);
    expect(rows.map((r: { data: string }) => r.data)).toEqual(['last words\n']);
    const health = await healthOn(sideUrl);
    expect(health).toEqual({ status: 503, body: { status: 'draining', databaseType: expect.any(String) }, connection: 'close' });
    expect(await healthOn(sideUrl, '/api/health/live')).toEqual(health);
    await new Promise((resolve) => side.close(resolve));
    // And the node's own port takes no new connection at all.
    await expect(healthOn(t.url)).rejects.toThrow(/ECONNREFUSED/);
    expect(LiveServerEvents.draining).toBe(ServerToAgentEvents.draining);
  });
});
