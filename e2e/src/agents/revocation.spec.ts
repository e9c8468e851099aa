/**
 * A project deleted under a REAL agent process that is streaming output
 * (threat model T46): the agent is told why, stops, exits 3 with a clear
 * message, and never dials again — not even when a supervisor starts it
 * again. The server stores and forwards nothing of it afterwards: no
 * "send again later" loop, no handshakes.
 */
import { LiveClientEvents, LiveServerEvents } from '@kapitan/shared';
import {
  collectSocketEvents,
  connectLive,
  describeOrSkip,
  emitWithAck,
  requireMysql,
  startServer,
  waitFor,
  type ProcessExit,
  type TestAgent,
  type TestServer,
} from '../harness';
import { setupProject, startOnlineAgent, type TestProject } from './fixtures';

const EXIT_REVOKED = 3;

/** The exit of `agent`'s run process, or a rejection after `timeoutMs` with its logs. */
async function exitOf(agent: TestAgent, timeoutMs = 20_000): Promise<ProcessExit> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      agent.managed.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the agent did not exit within ${timeoutMs} ms\n${agent.logs()}`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

describeOrSkip(requireMysql())('a project deleted under a running agent (MySQL)', () => {
  let server: TestServer;
  let p: TestProject;
  let bystanderProject: TestProject;
  let agent: TestAgent;
  let bystander: TestAgent;

  beforeAll(async () => {
    server = await startServer({ database: 'mysql' });
    p = await setupProject(server.url, 'doomed');
    bystanderProject = await setupProject(server.url, 'bystander');
    agent = await startOnlineAgent(server.url, p, { env: { KAPITAN_AGENT_HEARTBEAT_MS: '200' } });
    bystander = await startOnlineAgent(server.url, bystanderProject, { env: { KAPITAN_AGENT_HEARTBEAT_MS: '200' } });
  });
  afterAll(async () => {
    await agent?.dispose();
    await bystander?.dispose();
    await server?.dispose();
  });

  test('the agent exits 3 with the reason, stays out when started again, and nothing of it is stored or forwarded afterwards', async () => {
    const run = await p.api.createExecution(p.projectId, { script: '#!/bin/sh\nwhile true; do echo tick; sleep 0.05; done\n', targets: { machineIds: [agent.machineId] } });
    const executionId = run.executions[0].id;
    const viewer = await connectLive(server.url, p.owner.accessToken);
    expect((await emitWithAck(viewer, LiveClientEvents.subscribeExecution, { executionId, fromSeq: 0 })) as { ok: boolean }).toMatchObject({ ok: true });
    const live = collectSocketEvents(viewer, LiveServerEvents.output).events;
    await waitFor(() => live.length >= 3, { timeoutMs: 30_000, intervalMs: 20, message: 'live output of the run' });

    const logMark = server.logs().length;
    expect((await p.api.request('DELETE', `/api/projects/${p.projectId}`)).status).toBe(204);
    const forwardedAtDeletion = live.length;

    const exit = await exitOf(agent);
    expect(exit.code).toBe(EXIT_REVOKED);
    const agentLogs = agent.logs();
    expect(agentLogs).toMatch(/the server revoked this machine/);
    expect(agentLogs).toMatch(/was revoked by the server at .*the project of this machine was deleted.*enrol --force/);

    // Started again (systemd's Restart=): refused before dialling, the same message, the same exit code.
    await agent.restart();
    const again = await exitOf(agent);
    expect(again.code).toBe(EXIT_REVOKED);
    expect(agent.logs()).toMatch(/#2[\s\S]*was revoked by the server at [\s\S]*will not connect again/);

    // The bystander, still working, is the clock: its run finishing proves the server was up and listening meanwhile.
    const other = await bystanderProject.api.createExecution(bystanderProject.projectId, { script: 'echo still here', targets: { machineIds: [bystander.machineId] } });
    await waitFor(async () => (await bystanderProject.api.getExecution(other.executions[0].id)).status === 'succeeded', {
      timeoutMs: 30_000,
      intervalMs: 100,
      message: "the bystander's run",
    });

    const afterwards = server.logs().slice(logMark);
    // No "send again later" loop, no redial of the revoked credential.
    expect(afterwards).not.toMatch(/could not store agent report/);
    expect(afterwards).not.toMatch(/agent handshake refused/);
    expect(live.length).toBe(forwardedAtDeletion);
    expect((await p.api.request('GET', `/api/executions/${executionId}`)).status).toBe(404);
  });
});
