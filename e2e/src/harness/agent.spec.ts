// The harness's agent lifecycle, exercised on a stand-in process
// (fixtures/agent.mjs) with the agent's command line.
import fs from 'node:fs';
import path from 'node:path';
import { startAgent } from './agent';

const fixture = path.join(__dirname, 'fixtures/agent.mjs');
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('startAgent', () => {
  it('enrols, runs, restarts on the same state dir and cleans up', async () => {
    const agent = await startAgent({ entry: fixture, serverUrl: 'http://127.0.0.1:1', token: 'good-token', labels: { role: 'web', zone: 'a=b' } });
    expect(agent.machineId).toMatch(UUID);
    const state = JSON.parse(fs.readFileSync(path.join(agent.stateDir, 'state.json'), 'utf8'));
    expect(state).toEqual({ machineId: agent.machineId, server: 'http://127.0.0.1:1', labels: ['role=web', 'zone=a=b'] });
    await agent.managed.waitForLine(new RegExp(`running as ${agent.machineId} \\(max backoff 2000\\)`));

    const firstPid = agent.process.pid;
    await agent.restart();
    expect(agent.process.pid).not.toBe(firstPid);
    await agent.managed.waitForLine(new RegExp(`running as ${agent.machineId}`));
    await expect(agent.stop()).resolves.toEqual({ code: 0, signal: null });
    expect(agent.logs()).toMatch(/enrolled machine[\s\S]*running as[\s\S]*stopping[\s\S]*running as[\s\S]*stopping/);

    await agent.dispose();
    expect(fs.existsSync(agent.stateDir)).toBe(false);
  });

  it('finds the machine id in the state dir when enrol prints none', async () => {
    const agent = await startAgent({ entry: fixture, serverUrl: 'http://x', token: 'good-token', env: { FIXTURE_SILENT: '1' } });
    expect(agent.machineId).toMatch(UUID);
    await agent.dispose();
  });

  it('reports a refused enrolment with its output', async () => {
    await expect(startAgent({ entry: fixture, serverUrl: 'http://x', token: 'bad' })).rejects.toThrow(
      /enrol failed \(code 2[\s\S]*enrolment refused: invalid token/,
    );
  });
});
