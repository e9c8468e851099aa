/**
 * The agent in the forms clients receive (agent/scripts/bundle.mjs): the
 * single bundled file on the machine's own Node (Node 20 on these machines,
 * the oldest the agent supports), and the standalone executable that needs
 * no Node at all. Each reports its version, enrols, connects and runs a
 * script end to end against a real server, and supervises the real Docker
 * engine (the bundle replaces parts of dockerode it never uses with stubs:
 * this proves what is left still works).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { MachineDockerStatus } from '@kapitan/shared';
import { REPO_ROOT, requireDockerSync, requirement, startServer, waitFor, type TestServer } from '../harness';
import { setupProject, startOnlineAgent, waitForFinal, type TestProject } from './fixtures';

const BUNDLE = path.join(REPO_ROOT, 'agent/dist/bundle/kapitan-agent.cjs');
const SEA = path.join(REPO_ROOT, 'agent/dist/sea/kapitan-agent');
const BUN = path.join(REPO_ROOT, 'agent/dist/bun/kapitan-agent');
const SYSTEM_NODE = '/usr/bin/node';
const version = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'agent/package.json'), 'utf8')).version as string;

function systemNodeReason(): string | null {
  try {
    const v = execFileSync(SYSTEM_NODE, ['--version'], { encoding: 'utf8' }).trim();
    const major = Number(/^v(\d+)/.exec(v)?.[1]);
    return major >= 20 ? null : `${SYSTEM_NODE} is ${v}; the bundle targets Node >= 20`;
  } catch {
    return `no ${SYSTEM_NODE}`;
  }
}

describe('the shipped agent forms (real server, SQLite)', () => {
  let server: TestServer;
  let p: TestProject;

  beforeAll(async () => {
    for (const f of [BUNDLE, SEA, BUN]) if (!fs.existsSync(f)) throw new Error(`${f} is missing: npm run build -w agent`);
    server = await startServer({ database: 'sqlite', env: { LOG_LEVEL: 'warn' } });
    p = await setupProject(server.url, 'shipped');
  });
  afterAll(() => server?.dispose());

  const forms = [
    { name: 'the bundle on the machine’s Node', entry: BUNDLE, launcher: [SYSTEM_NODE], reason: () => requirement('system Node >= 20', systemNodeReason()) },
    { name: 'the standalone executable (Node SEA)', entry: SEA, launcher: [] as string[], reason: () => null },
    { name: 'the standalone executable (Bun)', entry: BUN, launcher: [] as string[], reason: () => null },
  ];

  for (const form of forms) {
    it(`${form.name}: --version, enrol, connect, run a script`, async () => {
      if (form.reason()) return;
      const [command, ...args] = form.launcher.length ? [...form.launcher, form.entry] : [form.entry];
      expect(execFileSync(command!, [...args, '--version'], { encoding: 'utf8' }).trim()).toBe(version);
      const agent = await startOnlineAgent(server.url, p, { entry: form.entry, launcher: form.launcher });
      try {
        const run = await p.api.createExecution(p.projectId, { script: 'echo shipped', targets: { machineIds: [agent.machineId] } });
        const e = await waitForFinal(p, run.executions[0].id);
        expect(e).toMatchObject({ status: 'succeeded', exitCode: 0 });
        expect(await p.api.getExecutionLogText(e.id)).toContain('shipped\n');
        const machine = (await p.api.request<{ facts: { agentVersion: string } }>('GET', `/api/projects/${p.projectId}/machines/${agent.machineId}`)).body;
        expect(machine.facts.agentVersion).toBe(version);
        if (!requireDockerSync()) {
          const docker = await waitFor(
            async () => {
              const status = (await p.api.request<MachineDockerStatus>('GET', `/api/machines/${agent.machineId}/docker`)).body;
              return status.available ? status : null;
            },
            { timeoutMs: 15_000, message: 'the shipped agent reaching the Docker engine' },
          );
          expect(docker.engineVersion).toMatch(/^\d+\./);
        }
      } finally {
        await agent.dispose();
      }
    });
  }
});
