/**
 * The dashboard's /live namespace: live output with history and no gap or
 * duplicate, membership at every subscribe, tokens in the handshake only
 * (design invariant 3; threat model T2, T9, T33).
 */
import { isFinalStatus, LIVE_NAMESPACE, type ExecutionChunksAck, LiveClientEvents, LiveServerEvents, type LiveOutputEvent, type OutputChunk } from '@kapitan/shared';
import type { Socket } from 'socket.io-client';
import {
  connectLive,
  describeOrSkip,
  emitWithAck,
  expectConnectRefused,
  requireMysql,
  startServer,
  waitFor,
  waitForSocketEvent,
  type LiveSocket,
  type TestAgent,
  type TestServer,
} from '../harness';
import { setupProject, startOnlineAgent, type TestProject } from './fixtures';

describeOrSkip(requireMysql())('live namespace (MySQL, real agent)', () => {
  let server: TestServer;
  let p: TestProject;
  let agent: TestAgent;

  beforeAll(async () => {
    server = await startServer({ database: 'mysql' });
    p = await setupProject(server.url, 'live');
    agent = await startOnlineAgent(server.url, p);
  });
  afterAll(async () => {
    await agent?.dispose();
    await server?.dispose();
  });

  test('output reaches a subscribed dashboard while the script still runs', async () => {
    const live = await connectLive(server.url, p.owner.accessToken);
    const { executions } = await p.api.createExecution(p.projectId, {
      script: 'echo first; sleep 3; echo second',
      targets: { machineIds: [agent.machineId] },
    });
    const id = executions[0].id;
    const firstLine = waitForSocketEvent({ socket: live, event: LiveServerEvents.output, match: (e) => e.chunks.some((c: OutputChunk) => c.data.includes('first')), timeoutMs: 10_000 });
    const ack = (await emitWithAck(live, LiveClientEvents.subscribeExecution, { executionId: id, fromSeq: 0 })) as ExecutionChunksAck;
    expect(ack.ok).toBe(true);
    const sawFirst = ack.ok && ack.chunks.some((c) => c.data.includes('first'));
    if (!sawFirst) await firstLine;
    // The script is still sleeping: the first line came live, not with the final result.
    expect((await p.api.getExecution(id)).status).toBe('running');
    live.disconnect();
  });

  test('a late viewer gets the history, then the live tail, with no gap and no duplicate', async () => {
    const n = 300;
    const { executions } = await p.api.createExecution(p.projectId, {
      script: `#!/bin/sh\ni=1\nwhile [ $i -le ${n} ]; do echo "l$i"; i=$((i+1)); sleep 0.01; done\n`,
      targets: { machineIds: [agent.machineId] },
    });
    const id = executions[0].id;
    await waitFor(async () => (await p.api.getExecutionLog(id)).chunks.length >= 3, { timeoutMs: 20_000, intervalMs: 20, message: 'some output first' });
    const live = await connectLive(server.url, p.owner.accessToken);
    const seen = new Map<number, OutputChunk>();
    let duplicatesFromLive = 0;
    let refetched = 0;
    live.on(LiveServerEvents.output, (e: LiveOutputEvent) => {
      for (const c of e.chunks) {
        if (seen.has(c.seq) && seen.get(c.seq)!.data !== c.data) throw new Error(`seq ${c.seq} arrived with different data`);
        if (seen.has(c.seq)) duplicatesFromLive++;
        seen.set(c.seq, c);
      }
    });
    const ack = (await emitWithAck(live, LiveClientEvents.subscribeExecution, { executionId: id, fromSeq: 0 })) as ExecutionChunksAck;
    if (!ack.ok) throw new Error(JSON.stringify(ack));
    expect(ack.chunks.length).toBeGreaterThan(0);
    for (const c of ack.chunks) seen.set(c.seq, c);
    await waitFor(async () => isFinalStatus((await p.api.getExecution(id)).status), { timeoutMs: 30_000, intervalMs: 100, message: 'run done' });
    // Chunks forwarded between the join and the history read arrive both ways; the client drops repeats by seq,
    // and what it assembled (history, then live) is the whole stored log.
    const stored = await p.api.getExecutionLog(id);
    // As the dashboard does: a gap that stays open is asked for again (a chunk can sit in another node's batch).
    const fillGaps = async () => {
      for (let seq = 0; seq < stored.chunks.length; seq++) {
        if (seen.has(seq)) continue;
        const page = (await emitWithAck(live, LiveClientEvents.executionHistory, { executionId: id, fromSeq: seq })) as ExecutionChunksAck;
        if (page.ok) for (const c of page.chunks) if (!seen.has(c.seq)) seen.set(c.seq, c);
        refetched++;
      }
      return seen.size >= stored.chunks.length;
    };
    await waitFor(() => seen.size >= stored.chunks.length, { timeoutMs: 2_000, message: 'every chunk seen live or in history' }).catch(fillGaps);
    // On one node nothing needed asking again: the subscribe commits what this node already forwarded.
    expect(refetched).toBe(0);
    const assembled = [...seen.values()].sort((x, y) => x.seq - y.seq);
    expect(assembled.map((c) => c.seq)).toEqual(assembled.map((_, i) => i));
    expect(assembled.map((c) => c.data).join('')).toBe(Array.from({ length: n }, (_, i) => `l${i + 1}\n`).join(''));
    expect(duplicatesFromLive).toBeLessThan(assembled.length);
    live.disconnect();
  });

  test('project subscription: machine and execution status arrive live', async () => {
    const live = await connectLive(server.url, p.owner.accessToken);
    expect(await emitWithAck(live, LiveClientEvents.subscribeProject, { projectId: p.projectId })).toEqual({ ok: true });
    const running = waitForSocketEvent({ socket: live, event: LiveServerEvents.execution, match: (e) => e.execution.status === 'succeeded' });
    await p.api.createExecution(p.projectId, { script: 'true', targets: { machineIds: [agent.machineId] } });
    const e = await running;
    expect(e.projectId).toBe(p.projectId);
    const offline = waitForSocketEvent({ socket: live, event: LiveServerEvents.machine, match: (m) => m.machine.id === agent.machineId && m.machine.status === 'offline', timeoutMs: 15_000 });
    await agent.stop('SIGTERM');
    await offline;
    const online = waitForSocketEvent({ socket: live, event: LiveServerEvents.machine, match: (m) => m.machine.id === agent.machineId && m.machine.status === 'online', timeoutMs: 15_000 });
    await agent.restart();
    await online;
    live.disconnect();
  });

  test("another project's rooms are refused, and nothing from them ever arrives", async () => {
    const outsider = await setupProject(server.url, 'outsider');
    const live = await connectLive(server.url, outsider.owner.accessToken);
    const received: unknown[] = [];
    for (const ev of [LiveServerEvents.output, LiveServerEvents.execution, LiveServerEvents.machine]) live.on(ev as never, ((x: unknown) => void received.push(x)) as never);
    const { executions } = await p.api.createExecution(p.projectId, { script: 'echo secret; sleep 1; echo more', targets: { machineIds: [agent.machineId] } });
    const id = executions[0].id;
    expect(await emitWithAck(live, LiveClientEvents.subscribeProject, { projectId: p.projectId })).toMatchObject({ ok: false, error: { code: 'not_found' } });
    expect(await emitWithAck(live, LiveClientEvents.subscribeExecution, { executionId: id, fromSeq: 0 })).toMatchObject({ ok: false, error: { code: 'not_found' } });
    expect(await emitWithAck(live, LiveClientEvents.executionHistory, { executionId: id, fromSeq: 0 })).toMatchObject({ ok: false, error: { code: 'not_found' } });
    expect(await emitWithAck(live, LiveClientEvents.subscribeExecution, { executionId: 'x', fromSeq: -1 } as never)).toMatchObject({ ok: false, error: { code: 'validation_failed' } });
    // A member watching the same run proves events flowed while the outsider heard nothing.
    const member = await connectLive(server.url, p.owner.accessToken);
    const done = waitForSocketEvent({ socket: member, event: LiveServerEvents.execution, match: (e) => e.execution.id === id && isFinalStatus(e.execution.status), timeoutMs: 15_000 });
    await emitWithAck(member, LiveClientEvents.subscribeExecution, { executionId: id, fromSeq: 0 });
    await done;
    expect(received).toEqual([]);
    live.disconnect();
    member.disconnect();
  });

  test('handshake: no token, a forged token, a cookie from a foreign origin → refused; logout drops the socket at once', async () => {
    await expectConnectRefused(server.url, LIVE_NAMESPACE, {});
    await expectConnectRefused(server.url, LIVE_NAMESPACE, { token: p.owner.accessToken.slice(0, -3) + 'abc' });
    // Cross-site WebSocket hijacking: a browser would send the victim's cookies and its own Origin, but no token.
    await expectConnectRefused(server.url, LIVE_NAMESPACE, {}, { extraHeaders: { Origin: 'https://evil.example', Cookie: `token=${p.owner.accessToken}` } });
    const user = await setupProject(server.url, 'leaver');
    const live: LiveSocket = await connectLive(server.url, user.owner.accessToken);
    const dropped = waitForSocketEvent({ socket: live as unknown as Socket, event: 'disconnect', timeoutMs: 2000, failOnDisconnect: false });
    await user.api.logout();
    await dropped;
    await expectConnectRefused(server.url, LIVE_NAMESPACE, { token: user.owner.accessToken });
  });
});
