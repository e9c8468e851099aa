/**
 * Faults in the middle of a run (threat model T24–T27): the stored log must be
 * exactly what the process wrote, whatever broke in between.
 */
import net from 'node:net';
import {
  createTestDatabase,
  describeOrSkip,
  expectError,
  mysqlServerUrl,
  requireMysql,
  startServer,
  waitFor,
  waitForMachineStatus,
  type TestAgent,
  type TestServer,
} from '../harness';
import { setupProject, startOnlineAgent, waitForFinal, type TestProject } from './fixtures';

/** A script printing `line 1` … `line n`, a little at a time, and the exact text it writes. */
function numberedLines(n: number, sleep = '0.002'): { script: string; expected: string } {
  return {
    script: `#!/bin/sh\ni=1\nwhile [ $i -le ${n} ]; do echo "line $i"; i=$((i+1)); sleep ${sleep}; done\n`,
    expected: Array.from({ length: n }, (_, i) => `line ${i + 1}\n`).join(''),
  };
}

async function someOutputStored(p: TestProject, id: string): Promise<void> {
  await waitFor(async () => (await p.api.getExecutionLog(id, { limit: 1 })).chunks.length > 0, { timeoutMs: 30_000, intervalMs: 50, message: 'first output stored' });
}

describeOrSkip(requireMysql())('faults mid-run (MySQL)', () => {
  let server: TestServer;
  let p: TestProject;
  let agent: TestAgent;

  beforeAll(async () => {
    server = await startServer({ database: 'mysql' });
    p = await setupProject(server.url, 'faults');
    agent = await startOnlineAgent(server.url, p);
  });
  afterAll(async () => {
    await agent?.dispose();
    await server?.dispose();
  });

  test('server SIGKILLed mid-stream and restarted: the stored log is identical to what the process wrote, nothing doubled', async () => {
    const { script, expected } = numberedLines(3000);
    const { executions } = await p.api.createExecution(p.projectId, { script, targets: { machineIds: [agent.machineId] } });
    const id = executions[0].id;
    await someOutputStored(p, id);
    await server.kill();
    await server.restart();
    const e = await waitForFinal(p, id);
    expect(e.status).toBe('succeeded');
    const log = await p.api.getExecutionLog(id);
    expect(log.gaps).toEqual([]);
    expect(await p.api.getExecutionLogText(id)).toBe(expected);
  });

  test('agent killed mid-run: the execution ends lost, with a reason, once the agent is back', async () => {
    const { executions } = await p.api.createExecution(p.projectId, { script: 'echo started; sleep 60', targets: { machineIds: [agent.machineId] } });
    const id = executions[0].id;
    await someOutputStored(p, id);
    expect((await p.api.getExecution(id)).status).toBe('running');
    await agent.kill();
    await agent.restart();
    const e = await waitForFinal(p, id, 30_000);
    expect(e.status).toBe('lost');
    expect(e.reason).toMatch(/restart/i);
    expect(await p.api.getExecutionLogText(id)).toBe('started\n');
  });

  test('network cut past the heartbeat timeout: machine shown offline; output written meanwhile arrives after reconnect', async () => {
    const { script, expected } = numberedLines(400, '0.1'); // ~40 s of output
    const { executions } = await p.api.createExecution(p.projectId, { script, targets: { machineIds: [agent.machineId] } });
    const id = executions[0].id;
    await someOutputStored(p, id);
    // A stopped agent process answers nothing: to the server it is a cut network. Its script keeps writing into the pipe.
    process.kill(agent.process.pid!, 'SIGSTOP');
    try {
      await waitForMachineStatus({ api: p.api, projectId: p.projectId, machineId: agent.machineId, status: 'offline', timeoutMs: 60_000 });
    } finally {
      process.kill(agent.process.pid!, 'SIGCONT');
    }
    await waitForMachineStatus({ api: p.api, projectId: p.projectId, machineId: agent.machineId, status: 'online', timeoutMs: 30_000 });
    const e = await waitForFinal(p, id);
    expect(e.status).toBe('succeeded');
    expect(await p.api.getExecutionLogText(id)).toBe(expected);
  }, 150_000);
});

/** A TCP relay to MariaDB that the test can cut and restore: the database "goes away" for a while. */
class CuttableProxy {
  private server: net.Server | null = null;
  private sockets = new Set<net.Socket>();
  port = 0;
  constructor(private readonly target: { host: string; port: number }) {}

  async open(port = 0): Promise<void> {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.target.port, this.target.host);
      this.sockets.add(client).add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  async cut(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    this.server = null;
  }
}

describeOrSkip(requireMysql())('database unavailable for a few seconds (MySQL behind a cuttable relay)', () => {
  test('requests answer 503, the agent keeps its unacknowledged output, and nothing is lost when the database returns', async () => {
    const db = await createTestDatabase();
    const upstream = new URL(mysqlServerUrl());
    const proxy = new CuttableProxy({ host: upstream.hostname, port: Number(upstream.port || 3306) });
    await proxy.open();
    const proxied = new URL(db.url);
    proxied.port = String(proxy.port);
    const server = await startServer({ database: { ...db, url: proxied.toString(), drop: db.drop } });
    try {
      const p = await setupProject(server.url, 'dbdown');
      const agent = await startOnlineAgent(server.url, p);
      const { script, expected } = numberedLines(200, '0.03'); // ~6 s
      const { executions } = await p.api.createExecution(p.projectId, { script, targets: { machineIds: [agent.machineId] } });
      const id = executions[0].id;
      await someOutputStored(p, id);
      await proxy.cut();
      const during = await waitFor(
        async () => {
          const r = await p.api.request('GET', `/api/projects/${p.projectId}`);
          return r.status === 503 ? r : null;
        },
        { timeoutMs: 15_000, intervalMs: 200, message: 'a 503 while the database is away' },
      );
      expectError(during, 503, 'service_unavailable');
      expect((await p.api.request('GET', '/api/health')).status).toBe(503);
      await waitFor(() => /could not store agent report/.test(server.logs()), { timeoutMs: 15_000, message: 'a refused store while the database is away' });
      await proxy.open(proxy.port);
      const e = await waitForFinal(p, id, 90_000);
      expect(e.status).toBe('succeeded');
      expect(await p.api.getExecutionLogText(id)).toBe(expected);
      await agent.dispose();
    } finally {
      await server.dispose();
      await proxy.cut().catch(() => undefined);
      await db.drop();
    }
  }, 150_000);
});
