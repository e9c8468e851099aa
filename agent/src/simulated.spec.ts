import type { MachineFacts } from '@kapitan/shared';
import { Agent } from './agent';
import { MemoryJournal } from './journal';
import { simulatedRunnerFactory } from './simulated';
import { FakeKapitanServer } from './test-support/fake-server';
import { newId, nextEvent, waitFor } from './test-support/wait';

const facts: MachineFacts = {
  hostname: 'sim',
  os: 'Sim',
  platform: 'linux',
  kernel: '0',
  arch: 'x64',
  cpus: 1,
  memoryBytes: 0,
  agentVersion: '0.1.0',
  dockerAvailable: false,
};

it('many simulated agents in one process share the real protocol code', async () => {
  const server = await FakeKapitanServer.start();
  const agents: Agent[] = [];
  try {
    for (let i = 0; i < 50; i++) {
      const credential = `sim-${i}`;
      server.addMachine(credential, newId());
      const agent = new Agent({
        state: { server: server.url, credential },
        stateDir: '/nonexistent/simulated', // never touched: memory journal, simulated runner
        journal: new MemoryJournal(),
        facts: () => ({ ...facts, hostname: `sim-${i}` }),
        createRunner: simulatedRunnerFactory((d) => ({ lines: Number(d.args[0] ?? 5), tickMs: 1 })),
        config: { heartbeatMs: 1000, maxBackoffMs: 100 },
      });
      agents.push(agent);
    }
    const ready = agents.map((a) => nextEvent(a.connection, 'ready'));
    agents.forEach((a) => a.start());
    await Promise.all(ready);
    expect(server.sockets()).toHaveLength(50);
    const id = newId();
    // one broadcast: every agent runs "its" execution with that id (fake server does not route)
    server.dispatch({ executionId: id, script: 'simulated', args: ['20'], env: {}, cwd: null, timeoutSeconds: 60 });
    await waitFor(() => (server.finished.get(id)?.length ?? 0) === 50, '50 finished reports');
    expect(server.receivedChunks(id).length).toBeGreaterThanOrEqual(50 * 20);
    expect(server.log(id).text.split('\n').length - 1).toBe(20);
  } finally {
    await Promise.all(agents.map((a) => a.stop({ drainMs: 0 })));
    await server.close();
  }
});
