/**
 * The bundle and the one-line install end to end, against a real server
 * serving HTTPS with its own CA: a downloaded zip unzipped as a client
 * would, its two agent forms enrolling over TLS and running a script, its
 * install.sh / uninstall.sh in test mode (KAPITAN_INSTALL_ROOT) laying down
 * and removing the files, the served one-line script installing and
 * connecting, refusals of spent and revoked tokens, and shellcheck over
 * every script a client runs.
 */
import { BundleConfigSchema, InstallLinkSchema, type EnrolmentToken, type InstanceTls } from '@kapitan/shared';
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import yauzl from 'yauzl';
import {
  childEnv,
  freePort,
  makeTempDir,
  REPO_ROOT,
  removeDir,
  requirement,
  spawnProcess,
  startAgent,
  startServer,
  waitForMachineStatus,
  type ManagedProcess,
  type TestServer,
} from '../harness';
import { setupProject, waitForFinal, type TestProject } from './fixtures';

const run = promisify(execFile);
const SYSTEM_NODE = '/usr/bin/node';
const version = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'agent/package.json'), 'utf8')).version as string;

function which(cmd: string): string | null {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return null;
  } catch {
    return `${cmd} is not installed`;
  }
}

function zipModes(file: string): Promise<Map<string, number>> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err ?? new Error('no zip'));
      const modes = new Map<string, number>();
      zip.on('entry', (e: yauzl.Entry) => {
        modes.set(e.fileName, (e.externalFileAttributes >>> 16) & 0o7777);
        zip.readEntry();
      });
      zip.on('end', () => resolve(modes));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}

// Digests, not Buffers, in expectations: a failing toEqual on a 100 MiB buffer would diff it.
const sha256 = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const mode = (file: string) => (fs.statSync(file).mode & 0o7777).toString(8);

describe('bundles and one-line installs (real HTTPS server, real agents)', () => {
  let server: TestServer;
  let publicUrl: string;
  let p: TestProject;
  let tls: InstanceTls;
  let work: string;
  const running: ManagedProcess[] = [];

  /** GET the bundle as the owner, unzip it with unzip(1) as a client would; the folder. */
  async function bundle(query = ''): Promise<{ dir: string; zip: string; token: string; config: ReturnType<typeof BundleConfigSchema.parse> }> {
    const res = await fetch(`${server.url}/api/projects/${p.projectId}/bundle${query}`, { headers: { authorization: `Bearer ${p.api.token!}` } });
    if (res.status !== 200) throw new Error(`bundle: HTTP ${res.status} ${await res.text()}`);
    const into = fs.mkdtempSync(path.join(work, 'bundle-'));
    const zip = path.join(into, 'bundle.zip');
    fs.writeFileSync(zip, Buffer.from(await res.arrayBuffer()));
    await run('unzip', ['-q', zip, '-d', into]);
    const dir = path.join(into, 'kapitan-agent');
    return {
      dir,
      zip,
      token: fs.readFileSync(path.join(dir, 'enrolment-token'), 'utf8').trim(),
      config: BundleConfigSchema.parse(JSON.parse(fs.readFileSync(path.join(dir, 'kapitan.json'), 'utf8'))),
    };
  }

  /** The installed agent's `run`, as the unit starts it: its pins and CA come from the state install.sh enrolled. */
  function runInstalled(root: string): ManagedProcess {
    const proc = spawnProcess(`installed-${running.length + 1}`, path.join(root, 'opt/kapitan-agent/kapitan-agent'), ['run', '--state-dir', path.join(root, 'var/lib/kapitan-agent')], {
      env: childEnv({
        KAPITAN_AGENT_POLICY_FILE: path.join(root, 'etc/kapitan/agent-policy.json'),
        KAPITAN_AGENT_MAX_BACKOFF_MS: '2000',
      }),
      cwd: root,
    });
    running.push(proc);
    return proc;
  }

  const machineIdOf = (root: string) => (JSON.parse(fs.readFileSync(path.join(root, 'var/lib/kapitan-agent/state.json'), 'utf8')) as { machineId: string }).machineId;
  const listTokens = async () => (await p.api.request<EnrolmentToken[]>('GET', `/api/projects/${p.projectId}/enrolment-tokens`)).body;

  async function runsAScript(machineId: string, text: string): Promise<void> {
    const r = await p.api.createExecution(p.projectId, { script: `echo ${text}`, targets: { machineIds: [machineId] } });
    const e = await waitForFinal(p, r.executions[0].id);
    expect(e).toMatchObject({ status: 'succeeded', exitCode: 0 });
    expect(await p.api.getExecutionLogText(e.id)).toContain(`${text}\n`);
  }

  beforeAll(async () => {
    requirement('unzip', which('unzip'));
    for (const f of ['agent/dist/bundle/kapitan-agent.cjs', 'agent/dist/bun/kapitan-agent']) {
      if (!fs.existsSync(path.join(REPO_ROOT, f))) throw new Error(`${f} is missing: npm run build -w agent`);
    }
    const httpsPort = await freePort();
    publicUrl = `https://127.0.0.1:${httpsPort}`;
    server = await startServer({ database: 'sqlite', env: { LOG_LEVEL: 'warn', HTTPS_PORT: String(httpsPort), KAPITAN_PUBLIC_URL: publicUrl } });
    p = await setupProject(server.url, 'bundle');
    tls = (await p.api.request<InstanceTls>('GET', '/api/instance/tls')).body;
    work = await makeTempDir('kapitan-e2e-bundles-');
  });
  afterAll(async () => {
    for (const proc of running) await proc.dispose();
    await server?.dispose();
    if (work) await removeDir(work);
  });

  it('the zip as unzipped: entries inside one folder, 0755 executables, 0644 files, 0600 token; config and CA of this server', async () => {
    const b = await bundle();
    const modes = await zipModes(b.zip);
    expect(modes.size).toBe(10);
    for (const [name, m] of modes) {
      expect(name.startsWith('kapitan-agent/')).toBe(true);
      expect(name.split('/')).not.toContain('..');
      expect(m & 0o022).toBe(0);
    }
    const executables = ['kapitan-agent', 'kapitan-agent.cjs', 'install.sh', 'uninstall.sh'];
    for (const f of fs.readdirSync(b.dir)) {
      const want = executables.includes(f) ? '755' : f === 'enrolment-token' ? '600' : '644';
      expect({ f, mode: mode(path.join(b.dir, f)) }).toEqual({ f, mode: want });
    }
    expect(b.config).toMatchObject({ serverUrl: publicUrl, projectId: p.projectId, version, pins: tls.pins.map((x) => x.spkiSha256) });
    expect(fs.readFileSync(path.join(b.dir, 'ca.pem'), 'utf8')).toBe(tls.caPem);
    expect((await listTokens()).find((t) => t.id === b.config.enrolmentTokenId)).toMatchObject({ purpose: 'bundle', uses: 0 });
  });

  it('shellcheck passes on install.sh, uninstall.sh and the served one-line script', async () => {
    if (requirement('shellcheck', which('shellcheck'))) return;
    const b = await bundle();
    const link = InstallLinkSchema.parse((await p.api.request('POST', `/api/projects/${p.projectId}/install-links`, { body: {} })).body);
    const script = path.join(b.dir, 'one-line.sh');
    const res = await fetch(link.url.replace(publicUrl, server.url));
    expect(res.status).toBe(200);
    fs.writeFileSync(script, await res.text());
    await run('shellcheck', ['-s', 'sh', path.join(b.dir, 'install.sh'), path.join(b.dir, 'uninstall.sh'), script]);
  });

  const forms = [
    { name: 'the .cjs on the machine’s Node', entry: 'kapitan-agent.cjs', launcher: [SYSTEM_NODE] },
    { name: 'the standalone executable', entry: 'kapitan-agent', launcher: [] as string[] },
  ];
  for (const form of forms) {
    it(`the bundle's ${form.name}: --version, enrol over HTTPS with the bundle's pins and CA, connect, run a script`, async () => {
      const b = await bundle();
      const entry = path.join(b.dir, form.entry);
      const [command, ...args] = form.launcher.length ? [...form.launcher, entry] : [entry];
      expect(execFileSync(command!, [...args, '--version'], { encoding: 'utf8' }).trim()).toBe(version);
      const trust = [...b.config.pins.flatMap((pin) => ['--pin', pin]), '--ca-file', path.join(b.dir, 'ca.pem')];
      const agent = await startAgent({ serverUrl: b.config.serverUrl, token: b.token, entry, launcher: form.launcher, enrolArgs: trust });
      try {
        await waitForMachineStatus({ api: p.api, projectId: p.projectId, machineId: agent.machineId, status: 'online' });
        await runsAScript(agent.machineId, `bundle-${form.entry.replace(/\W/g, '')}`);
      } finally {
        await agent.dispose();
      }
    });
  }

  it('install.sh in test mode: files, unit and modes; the installed agent connects; again = upgrade in place; uninstall.sh removes it all', async () => {
    const b = await bundle('?maxUses=1');
    const root = fs.mkdtempSync(path.join(work, 'root-'));
    const env = { ...process.env, KAPITAN_INSTALL_ROOT: root, KAPITAN_DOCKER: 'no' };
    const first = await run('sh', [path.join(b.dir, 'install.sh')], { env, timeout: 120_000 });
    expect(first.stderr).toContain(`installed kapitan-agent ${version} (exe) for ${publicUrl}`);

    const files = {
      'opt/kapitan-agent/kapitan-agent': '755',
      'etc/kapitan/kapitan.json': '644',
      'etc/kapitan/ca.pem': '644',
      'etc/kapitan/agent-policy.json': '644',
      'etc/systemd/system/kapitan-agent.service': '644',
      'var/lib/kapitan-agent': '700',
      'var/lib/kapitan-agent/state.json': '600',
    };
    for (const [f, m] of Object.entries(files)) expect({ f, mode: mode(path.join(root, f)) }).toEqual({ f, mode: m });
    expect(fs.existsSync(path.join(root, 'etc/systemd/system/kapitan-agent.service.d/docker.conf'))).toBe(false);
    expect(sha256(path.join(root, 'opt/kapitan-agent/kapitan-agent'))).toBe(sha256(path.join(b.dir, 'kapitan-agent')));
    const unit = fs.readFileSync(path.join(root, 'etc/systemd/system/kapitan-agent.service'), 'utf8').split('\n');
    for (const line of ['User=kapitan', 'ExecStart=/opt/kapitan-agent/kapitan-agent run --state-dir /var/lib/kapitan-agent', 'RestartPreventExitStatus=3 5', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'StateDirectory=kapitan-agent']) {
      expect(unit).toContain(line);
    }
    expect(JSON.parse(fs.readFileSync(path.join(root, 'etc/kapitan/agent-policy.json'), 'utf8'))).toMatchObject({ scripts: { enabled: true } });
    const machineId = machineIdOf(root);
    // Enrolled with the bundle's pins and CA: the agent checks them at every connection.
    const state = JSON.parse(fs.readFileSync(path.join(root, 'var/lib/kapitan-agent/state.json'), 'utf8')) as { server: string; pins?: string[]; caPem?: string };
    expect(state).toMatchObject({ server: publicUrl, pins: b.config.pins, caPem: tls.caPem });

    const agent = runInstalled(root);
    await waitForMachineStatus({ api: p.api, projectId: p.projectId, machineId, status: 'online', timeoutMs: 30_000 });
    await runsAScript(machineId, 'installed');
    await agent.stop();

    // The client's own policy survives an upgrade; the enrolment is kept (the token, used up, is not needed again).
    fs.writeFileSync(path.join(root, 'etc/kapitan/agent-policy.json'), '{"readOnly":true}\n');
    const again = await run('sh', [path.join(b.dir, 'install.sh')], { env: { ...env, KAPITAN_DOCKER: 'yes' }, timeout: 120_000 });
    expect(again.stderr).toContain('upgrading in place');
    expect(machineIdOf(root)).toBe(machineId);
    expect(fs.readFileSync(path.join(root, 'etc/kapitan/agent-policy.json'), 'utf8')).toBe('{"readOnly":true}\n');
    // With a Docker engine here and docker allowed, the unit gains the docker group by a drop-in.
    expect(fs.existsSync(path.join(root, 'etc/systemd/system/kapitan-agent.service.d/docker.conf'))).toBe(fs.existsSync('/var/run/docker.sock'));

    await run('sh', [path.join(b.dir, 'uninstall.sh')], { env, timeout: 60_000 });
    const left = fs.readdirSync(root, { recursive: true, withFileTypes: true }).filter((d) => !d.isDirectory());
    expect(left.map((d) => path.join(d.parentPath, d.name))).toEqual([]);
    expect(fs.existsSync(path.join(root, 'opt/kapitan-agent'))).toBe(false);
    expect(fs.existsSync(path.join(root, 'var/lib/kapitan-agent'))).toBe(false);
  });

  it('install.sh with KAPITAN_AGENT_FORM=cjs: the .cjs and a wrapper running it on the machine’s Node, enrolled', async () => {
    const b = await bundle('?maxUses=1');
    const root = fs.mkdtempSync(path.join(work, 'root-'));
    const out = await run('sh', [path.join(b.dir, 'install.sh')], { env: { ...process.env, KAPITAN_INSTALL_ROOT: root, KAPITAN_AGENT_FORM: 'cjs', KAPITAN_DOCKER: 'no' }, timeout: 120_000 });
    expect(out.stderr).toContain(`installed kapitan-agent ${version} (cjs) for ${publicUrl}`);
    const bin = path.join(root, 'opt/kapitan-agent/kapitan-agent');
    expect(mode(bin)).toBe('755');
    expect(mode(path.join(root, 'opt/kapitan-agent/kapitan-agent.cjs'))).toBe('644');
    expect(fs.readFileSync(bin, 'utf8')).toMatch(/^#!\/bin\/sh\nexec '[^']+\/node' '[^']+\/opt\/kapitan-agent\/kapitan-agent\.cjs' "\$@"\n$/);
    expect(execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim()).toBe(version);
    expect(machineIdOf(root)).toMatch(/^[0-9a-f-]{36}$/);
    await run('sh', [path.join(b.dir, 'uninstall.sh')], { env: { ...process.env, KAPITAN_INSTALL_ROOT: root }, timeout: 60_000 });
    expect(fs.existsSync(bin)).toBe(false);
  });

  it('a used-up or revoked bundle token: install.sh fails with the server’s refusal and installs no enrolment', async () => {
    const used = await bundle('?maxUses=1');
    const enrolled = fs.mkdtempSync(path.join(work, 'root-'));
    await run('sh', [path.join(used.dir, 'install.sh')], { env: { ...process.env, KAPITAN_INSTALL_ROOT: enrolled, KAPITAN_DOCKER: 'no' }, timeout: 120_000 });

    const revoked = await bundle();
    expect((await p.api.request('DELETE', `/api/projects/${p.projectId}/enrolment-tokens/${revoked.config.enrolmentTokenId}`)).status).toBe(204);

    for (const b of [used, revoked]) {
      const root = fs.mkdtempSync(path.join(work, 'root-'));
      const failed = await run('sh', [path.join(b.dir, 'install.sh')], { env: { ...process.env, KAPITAN_INSTALL_ROOT: root, KAPITAN_DOCKER: 'no' }, timeout: 120_000 }).then(
        () => null,
        (e: { code: number; stderr: string }) => e,
      );
      expect(failed).not.toBeNull();
      expect(failed!.code).toBe(1);
      expect(failed!.stderr).toMatch(/enrolment refused: enrolment token is not valid/);
      expect(fs.existsSync(path.join(root, 'var/lib/kapitan-agent/state.json'))).toBe(false);
    }
  });

  it('the one-line command: downloads and checks the agent, installs, connects within 30 s; the link then serves nothing', async () => {
    const link = InstallLinkSchema.parse((await p.api.request('POST', `/api/projects/${p.projectId}/install-links`, { body: {} })).body);
    expect(link.command).toBe(`curl -fsSL --insecure --pinnedpubkey 'sha256//${link.servingSpkiSha256!}' '${link.url}' | sh`);
    const root = fs.mkdtempSync(path.join(work, 'root-'));
    const out = await run('sh', ['-c', link.command], { env: { ...process.env, KAPITAN_INSTALL_ROOT: root, KAPITAN_DOCKER: 'no' }, timeout: 180_000 });
    expect(out.stderr).toContain('downloading the agent (exe)');
    expect(sha256(path.join(root, 'opt/kapitan-agent/kapitan-agent'))).toBe(sha256(path.join(REPO_ROOT, 'agent/dist/bun/kapitan-agent')));
    expect(mode(path.join(root, 'etc/kapitan/ca.pem'))).toBe('644');
    const machineId = machineIdOf(root);
    // The deadline is the issue's: connected within 30 s of starting the installed agent.
    runInstalled(root);
    await waitForMachineStatus({ api: p.api, projectId: p.projectId, machineId, status: 'online', timeoutMs: 30_000 });
    await runsAScript(machineId, 'one-line');

    expect((await listTokens()).find((t) => t.id === link.token.id)).toMatchObject({ purpose: 'install', uses: 1, maxUses: 1 });
    // Spent: curl -f gets a 404 and hands sh nothing, so nothing is installed.
    const second = fs.mkdtempSync(path.join(work, 'root-'));
    await run('sh', ['-c', link.command], { env: { ...process.env, KAPITAN_INSTALL_ROOT: second }, timeout: 60_000 }).catch(() => undefined);
    expect(fs.readdirSync(second)).toEqual([]);
    expect((await fetch(link.url.replace(publicUrl, server.url))).status).toBe(404);
  });

  it('a one-line script whose agent does not match its SHA-256 installs nothing', async () => {
    const link = InstallLinkSchema.parse((await p.api.request('POST', `/api/projects/${p.projectId}/install-links`, { body: {} })).body);
    const res = await fetch(link.url.replace(publicUrl, server.url));
    const script = (await res.text()).replace(/sum='[0-9a-f]{64}'/g, `sum='${'0'.repeat(64)}'`);
    const root = fs.mkdtempSync(path.join(work, 'root-'));
    const failed = await run('sh', ['-c', script], { env: { ...process.env, KAPITAN_INSTALL_ROOT: root, KAPITAN_AGENT_FORM: 'cjs' }, timeout: 60_000 }).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(failed?.code).toBe(1);
    expect(failed!.stderr).toContain('does not have the SHA-256 this script expects');
    expect(fs.existsSync(path.join(root, 'opt'))).toBe(false);
    expect((await listTokens()).find((t) => t.id === link.token.id)).toMatchObject({ uses: 0 });
  });
});
