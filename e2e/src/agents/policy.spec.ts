/**
 * The client policy end to end (threat model T71–T74): a real server, a
 * real agent process (as root, like the tests), policy files root-owned in
 * a private temp dir, the real Docker engine. Each policy rule refuses its
 * work on the agent; the API shows it `refused` with the rule in the reason,
 * and nothing was done on the machine. A policy file the agent could change
 * makes the agent refuse to start (exit 5), naming the file.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  isFinalDelivery,
  type ContainerOperation,
  type Delivery,
  type DeliveryMachine,
  type Machine,
  type ReportedPolicy,
} from '@kapitan/shared';
import { buildBusyboxImage, imageId, removeImages, saveImage } from '@kapitan/agent/testing';
import { makeTempDir, removeDir, requireDockerSync, startServer, waitFor, waitForMachineStatus, type TestAgent, type TestServer } from '../harness';
import { setupProject, startOnlineAgent, waitForFinal, type TestProject } from './fixtures';

const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
const ALLOWED_SCRIPT = 'echo allowed by hash\n';

describe('client policy on a real agent (SQLite)', () => {
  let server: TestServer;
  let p: TestProject;
  let agent: TestAgent;
  let policyDir: string;
  let root: string;
  let current: string;

  /** Writes `policy` root-owned 0644 in the private dir and restarts the agent on it; resolves once the server shows the new policy. */
  async function usePolicy(name: string, policy: object): Promise<ReportedPolicy> {
    const file = path.join(policyDir, `${name}.json`);
    const text = JSON.stringify(policy, null, 2);
    fs.writeFileSync(file, text, { mode: 0o644 });
    current = file;
    await agent.restart({ env: { KAPITAN_AGENT_POLICY_FILE: file } });
    const m = await waitFor(
      async () => {
        const m = await p.api.getMachine(p.projectId, agent.machineId);
        return m.status === 'online' && m.policy?.sha256 === sha(text) ? m : null;
      },
      { timeoutMs: 60_000, intervalMs: 100, message: `the agent to report policy ${name}` },
    );
    return m.policy!;
  }

  const run = async (script: string) => {
    const { executions } = await p.api.createExecution(p.projectId, { script, targets: { machineIds: [agent.machineId] } });
    return waitForFinal(p, executions[0].id);
  };
  const finalPart = (deliveryId: string): Promise<DeliveryMachine> =>
    waitFor(
      async () => {
        const d = (await p.api.request<Delivery>('GET', `/api/deliveries/${deliveryId}`)).body;
        return d.machines.length && isFinalDelivery(d.machines[0].status) ? d.machines[0] : null;
      },
      { timeoutMs: 60_000, intervalMs: 100, message: `delivery ${deliveryId} to end` },
    );
  const deploy = async (fileId: string, target: string): Promise<DeliveryMachine> => {
    const res = await p.api.request<Delivery>('POST', `/api/projects/${p.projectId}/deploys`, { body: { fileId, targets: { machineIds: [agent.machineId] }, path: target } });
    if (res.status !== 201) throw new Error(`deploy: HTTP ${res.status} ${res.text}`);
    return finalPart(res.body.id);
  };
  const operation = async (method: 'create', body: object): Promise<ContainerOperation> => {
    const res = await p.api.request<ContainerOperation>('POST', `/api/machines/${agent.machineId}/containers`, { body });
    if (res.status !== 202) throw new Error(`container ${method}: HTTP ${res.status} ${res.text}`);
    return waitFor(
      async () => {
        const o = (await p.api.request<ContainerOperation>('GET', `/api/container-operations/${res.body.id}`)).body;
        return ['succeeded', 'failed', 'refused'].includes(o.status) ? o : null;
      },
      { timeoutMs: 60_000, intervalMs: 100, message: `operation ${res.body.id}` },
    );
  };
  const refusedBy = (rule: string) => `refused by the client policy (${current}): ${rule}`;

  beforeAll(async () => {
    policyDir = await makeTempDir('kapitan-e2e-policy-');
    fs.chmodSync(policyDir, 0o700);
    root = await makeTempDir('kapitan-e2e-policy-deploys-');
    fs.mkdirSync(path.join(root, 'allowed'));
    fs.mkdirSync(path.join(root, 'other'));
    fs.symlinkSync(path.join(root, 'other'), path.join(root, 'allowed', 'link'));
    server = await startServer({ database: 'sqlite' });
    p = await setupProject(server.url, 'policy');
    // No file at the named path: everything allowed, reported as such.
    agent = await startOnlineAgent(server.url, p, { env: { KAPITAN_AGENT_DEPLOY_DIRS: root, KAPITAN_AGENT_POLICY_FILE: path.join(policyDir, 'absent.json') } });
  }, 120_000);
  afterAll(async () => {
    await agent?.dispose();
    await server?.dispose();
    for (const d of [policyDir, root]) if (d) await removeDir(d);
  });

  test('no policy file: reported as such, everything allowed', async () => {
    const m = await waitFor(async () => ((await p.api.getMachine(p.projectId, agent.machineId)).policy ? p.api.getMachine(p.projectId, agent.machineId) : null), {
      timeoutMs: 30_000,
      message: 'the policy report',
    });
    expect(m.policy).toEqual({
      path: path.join(policyDir, 'absent.json'),
      found: false,
      sha256: null,
      effective: { scripts: { enabled: true, allowSha256: null }, deploys: { enabled: true, pathPrefixes: [root] }, docker: { enabled: true, images: null }, readOnly: false },
    });
    expect(await run('echo hi')).toMatchObject({ status: 'succeeded' });
  });

  test('script hash not allowed, deploy outside the prefixes (also via a symlink), image pattern: refused with the rule; the allowed ones run', async () => {
    const reported = await usePolicy('allowlists', {
      scripts: { allowSha256: [sha(ALLOWED_SCRIPT)] },
      deploys: { pathPrefixes: [`${root}/allowed/`] },
      docker: { images: ['kapitan-test/e2e-policy-ok:*'] },
    });
    expect(reported.effective).toEqual({
      scripts: { enabled: true, allowSha256: [sha(ALLOWED_SCRIPT)] },
      deploys: { enabled: true, pathPrefixes: [`${root}/allowed/`] },
      docker: { enabled: true, images: ['kapitan-test/e2e-policy-ok:*'] },
      readOnly: false,
    });

    expect(await run(ALLOWED_SCRIPT)).toMatchObject({ status: 'succeeded', exitCode: 0 });
    const other = 'echo not allowed\n';
    const refused = await run(other);
    expect(refused).toMatchObject({ status: 'refused', exitCode: null, startedAt: null, reason: refusedBy(`the script's sha256 ${sha(other)} is not in scripts.allowSha256`) });
    expect(await p.api.getExecutionLogText(refused.id)).toBe('');

    const file = await p.api.uploadFile(p.projectId, 'file', 'app.conf', Buffer.from('setting=1\n'));
    expect(await deploy(file.id, `${root}/allowed/app.conf`)).toMatchObject({ status: 'succeeded' });
    expect(fs.readFileSync(`${root}/allowed/app.conf`, 'utf8')).toBe('setting=1\n');
    // Inside the agent's deploy dirs, outside the policy's prefixes.
    expect(await deploy(file.id, `${root}/other/app.conf`)).toMatchObject({
      status: 'refused',
      reason: refusedBy(`${root}/other/app.conf is outside deploys.pathPrefixes (${root}/allowed/)`),
      receivedBytes: 0,
    });
    // Spelt inside, lands outside: checked where the write would go.
    expect(await deploy(file.id, `${root}/allowed/link/app.conf`)).toMatchObject({ status: 'refused', reason: expect.stringContaining(`(it resolves to ${root}/other/app.conf) is outside deploys.pathPrefixes`) });
    expect(fs.readdirSync(`${root}/other`)).toEqual([]);

    const op = await operation('create', { image: 'busybox:latest' });
    expect(op).toMatchObject({ status: 'refused', error: refusedBy('image busybox:latest does not match docker.images (kapitan-test/e2e-policy-ok:*)'), containerId: null });

    // A load is checked against the tarball's own RepoTags: not loaded.
    if (requireDockerSync()) return;
    const tag = `kapitan-test/e2e-policy-denied:${process.pid}-${Date.now()}`;
    const dir = await makeTempDir('kapitan-e2e-policy-image-');
    try {
      const built = await buildBusyboxImage(tag, `policy ${tag}`);
      const tarball = path.join(dir, 'image.tar');
      await saveImage(tag, tarball);
      await removeImages(tag, built.id);
      const image = await p.api.uploadFile(p.projectId, 'image', 'image.tar', fs.readFileSync(tarball));
      const res = await p.api.request<Delivery>('POST', `/api/projects/${p.projectId}/distributions`, { body: { fileId: image.id, targets: { machineIds: [agent.machineId] } } });
      expect(res.status).toBe(201);
      expect(await finalPart(res.body.id)).toMatchObject({ status: 'refused', reason: refusedBy(`image ${tag} does not match docker.images (kapitan-test/e2e-policy-ok:*)`), imageId: null });
      expect(await imageId(built.id)).toBeNull();
    } finally {
      await removeImages(tag);
      await removeDir(dir);
    }
  }, 180_000);

  test('scripts off and docker off: every run, image load and container action refused', async () => {
    await usePolicy('off', { scripts: { enabled: false }, docker: { enabled: false } });
    expect(await run('echo hi')).toMatchObject({ status: 'refused', reason: refusedBy('scripts are disabled (scripts.enabled: false)') });
    expect(await operation('create', { image: 'busybox:latest' })).toMatchObject({ status: 'refused', error: refusedBy('docker is disabled (docker.enabled: false)') });
    // A distribution is refused before anything is downloaded.
    const image = await p.api.uploadFile(p.projectId, 'image', 'other.tar', tarHeader());
    const res = await p.api.request<Delivery>('POST', `/api/projects/${p.projectId}/distributions`, { body: { fileId: image.id, targets: { machineIds: [agent.machineId] } } });
    expect(await finalPart(res.body.id)).toMatchObject({ status: 'refused', reason: refusedBy('docker is disabled (docker.enabled: false)'), receivedBytes: 0 });
  }, 120_000);

  test('readOnly: no scripts, no deploys, no container actions', async () => {
    await usePolicy('readonly', { readOnly: true });
    expect(await run('touch /tmp/should-not-exist')).toMatchObject({ status: 'refused', reason: refusedBy('readOnly is set: no scripts run on this machine') });
    const file = await p.api.uploadFile(p.projectId, 'file', 'ro.conf', Buffer.from('x\n'));
    expect(await deploy(file.id, `${root}/allowed/ro.conf`)).toMatchObject({ status: 'refused', reason: refusedBy('readOnly is set: no deploys on this machine') });
    expect(fs.existsSync(`${root}/allowed/ro.conf`)).toBe(false);
    expect(await operation('create', { image: 'busybox:latest' })).toMatchObject({ status: 'refused', error: refusedBy('readOnly is set: no container create on this machine') });
  }, 120_000);

  test('SIGHUP reads the file again: the new policy is reported and applies without a restart', async () => {
    const pid = agent.process.pid;
    const text = JSON.stringify({ readOnly: false, scripts: { enabled: true } });
    fs.writeFileSync(current, text);
    agent.process.kill('SIGHUP');
    await waitFor(
      async () => {
        const m = await p.api.getMachine(p.projectId, agent.machineId);
        return m.status === 'online' && m.policy?.sha256 === sha(text) ? m : null;
      },
      { timeoutMs: 60_000, intervalMs: 100, message: 'the reloaded policy reported' },
    );
    expect(agent.process.pid).toBe(pid);
    expect(agent.process.exitCode).toBeNull();
    expect(await run('echo after reload')).toMatchObject({ status: 'succeeded' });
  }, 120_000);

  test('a policy file writable by others, or that does not parse: the agent refuses to start (exit 5) naming the file; fixed, it starts', async () => {
    const writable = path.join(policyDir, 'writable.json');
    fs.writeFileSync(writable, '{}');
    fs.chmodSync(writable, 0o666);
    await agent.restart({ env: { KAPITAN_AGENT_POLICY_FILE: writable } });
    expect((await agent.managed.exited).code).toBe(5);
    expect(agent.managed.logs()).toContain(`refusing to start: client policy ${writable}: the file is writable by group or others (mode 0666)`);
    await waitForMachineStatus({ api: p.api, projectId: p.projectId, machineId: agent.machineId, status: 'offline' });

    const typo = path.join(policyDir, 'typo.json');
    fs.writeFileSync(typo, '{ "readonly": true }', { mode: 0o644 });
    await agent.restart({ env: { KAPITAN_AGENT_POLICY_FILE: typo } });
    expect((await agent.managed.exited).code).toBe(5);
    expect(agent.managed.logs()).toMatch(/client policy .*typo.json: does not match the policy format: \(top level\): .*"readonly"/);

    fs.chmodSync(writable, 0o644);
    current = writable;
    await agent.restart({ env: { KAPITAN_AGENT_POLICY_FILE: writable } });
    const m: Machine = await waitFor(
      async () => {
        const m = await p.api.getMachine(p.projectId, agent.machineId);
        return m.status === 'online' && m.policy?.path === writable ? m : null;
      },
      { timeoutMs: 60_000, message: 'the agent back online with the fixed file' },
    );
    expect(m.policy).toMatchObject({ found: true, sha256: sha('{}') });
  }, 120_000);
});

/** A tar header with the ustar magic: what the store accepts as an image (the agent refuses before reading it). */
function tarHeader(): Buffer {
  const b = Buffer.alloc(2048);
  b.write('ustar\x0000', 257, 'latin1');
  return b;
}
