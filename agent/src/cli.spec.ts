import * as fs from 'node:fs';
import * as path from 'node:path';
import { EnrolRequestSchema, type MachineFacts } from '@kapitan/shared';
import { normaliseServerUrl, parseLabels, runCli, type CliContext } from './cli';
import { PID_FILE, readState, statePath, writeState } from './state';
import { makeCa, RecordingHttpsServer } from './test-support/certs';
import { FakeKapitanServer } from './test-support/fake-server';
import { newId, tmpDir, waitFor } from './test-support/wait';

const facts: MachineFacts = {
  hostname: 'cli-spec',
  os: 'Test OS',
  platform: 'linux',
  kernel: '6.0.0',
  arch: 'x64',
  cpus: 1,
  memoryBytes: 1,
  agentVersion: '0.1.0',
  dockerAvailable: false,
};

let dir: string;
let server: FakeKapitanServer;
beforeEach(async () => {
  dir = path.join(tmpDir(), 'state');
  server = await FakeKapitanServer.start();
});
afterEach(async () => {
  await server.close();
  fs.rmSync(path.dirname(dir), { recursive: true, force: true });
});

async function cli(args: string[], ctx: CliContext = {}) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, {
    stdout: (s) => (stdout += s),
    stderr: (s) => (stderr += s),
    env: {},
    facts: async () => facts,
    ...ctx,
  });
  return { code, stdout, stderr };
}

describe('help and usage errors', () => {
  it('prints help for the agent and each command', async () => {
    for (const args of [['--help'], ['-h'], ['help']]) {
      const r = await cli(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/Usage: kapitan-agent <command>/);
    }
    for (const cmd of ['enrol', 'run', 'status']) {
      expect((await cli([cmd, '--help'])).stdout).toMatch(new RegExp(`Usage: kapitan-agent ${cmd}`));
      expect((await cli(['help', cmd])).stdout).toMatch(new RegExp(`Usage: kapitan-agent ${cmd}`));
    }
    expect((await cli(['--version'])).stdout).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('rejects unknown commands, unknown flags and stray arguments with exit code 2', async () => {
    expect(await cli([])).toMatchObject({ code: 2 });
    const unknownCmd = await cli(['launch']);
    expect(unknownCmd.code).toBe(2);
    expect(unknownCmd.stderr).toMatch(/unknown command "launch"/);
    const unknownFlag = await cli(['enrol', '--server', 'http://x', '--token', 't', '--bogus']);
    expect(unknownFlag.code).toBe(2);
    expect(unknownFlag.stderr).toMatch(/Unknown option '--bogus'/);
    expect(unknownFlag.stderr).toMatch(/kapitan-agent enrol --help/);
    expect((await cli(['run', 'extra'])).code).toBe(2);
    expect((await cli(['status', '--state-dir'])).code).toBe(2);
    expect((await cli(['help', 'nope'])).code).toBe(2);
  });

  it('validates enrol options', async () => {
    expect((await cli(['enrol', '--token', 't'])).stderr).toMatch(/--server is required/);
    expect((await cli(['enrol', '--server', 'http://x'])).stderr).toMatch(/--token is required/);
    for (const server of ['ftp://x', 'not a url', 'http://user:pw@x', 'http://x/?q=1']) {
      const r = await cli(['enrol', '--server', server, '--token', 't', '--state-dir', dir]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--server/);
    }
    for (const label of ['novalue', '=v', '-bad=1', 'a b=1']) {
      const r = await cli(['enrol', '--server', 'http://x', '--token', 't', '--label', label, '--state-dir', dir]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/label/);
    }
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('normalises server URLs and parses labels', () => {
    expect(normaliseServerUrl('https://k.example.com/')).toBe('https://k.example.com');
    expect(normaliseServerUrl('http://k:8080/prefix/')).toBe('http://k:8080/prefix');
    expect(parseLabels(['env=prod', 'role=web=1', 'empty='])).toEqual({ env: 'prod', role: 'web=1', empty: '' });
    expect(() => parseLabels(['a=1', 'a=2'])).toThrow(/twice/);
    expect(() => parseLabels(Array.from({ length: 33 }, (_, i) => `k${i}=v`))).toThrow(/at most 32/);
    expect(() => parseLabels([`k=${'v'.repeat(256)}`])).toThrow(/invalid labels/);
  });
});

describe('enrol', () => {
  it('exchanges the token for a credential and saves it 0600', async () => {
    const projectId = newId();
    server.enrolTokens.set('tok-1', projectId);
    const r = await cli(['enrol', '--server', server.url + '/', '--token', 'tok-1', '--label', 'env=prod', '--label', 'zone=a', '--state-dir', dir]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const e = server.enrolments[0]!;
    expect(r.stdout).toContain(e.machineId);
    expect(EnrolRequestSchema.parse(e.body)).toEqual({ token: 'tok-1', facts, labels: { env: 'prod', zone: 'a' } });
    const state = readState(dir)!;
    expect(state).toMatchObject({ server: server.url, machineId: e.machineId, projectId, credential: e.credential, labels: { env: 'prod', zone: 'a' } });
    expect(fs.statSync(statePath(dir)).mode & 0o777).toBe(0o600);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(r.stdout).not.toContain(e.credential);

    // already enrolled: refused unless --force
    const again = await cli(['enrol', '--server', server.url, '--token', 'tok-1', '--state-dir', dir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already enrolled/);
    const forced = await cli(['enrol', '--server', server.url, '--token', 'tok-1', '--state-dir', dir, '--force']);
    expect(forced.code).toBe(0);
    expect(readState(dir)!.machineId).toBe(server.enrolments[1]!.machineId);
  });

  it('prints the server’s error message and exits non-zero when refused', async () => {
    const r = await cli(['enrol', '--server', server.url, '--token', 'wrong', '--state-dir', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/enrolment refused: enrolment token is invalid, expired or used up \(enrolment_refused, HTTP 401\)/);
    expect(readState(dir)).toBeNull();
  });

  it('fails clearly when the server cannot be reached', async () => {
    const url = server.url;
    await server.close();
    server = await FakeKapitanServer.start();
    const r = await cli(['enrol', '--server', url.replace(/:\d+$/, ':1'), '--token', 't', '--state-dir', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/could not reach/);
  });

  it('takes the state directory from KAPITAN_AGENT_STATE_DIR', async () => {
    server.enrolTokens.set('tok-2', newId());
    const r = await cli(['enrol', '--server', server.url, '--token', 'tok-2'], { env: { KAPITAN_AGENT_STATE_DIR: dir } });
    expect(r.code).toBe(0);
    expect(readState(dir)).not.toBeNull();
  });
});

describe('enrol with pins, a CA file and a proxy', () => {
  const ours = makeCa('cli-ours');
  const other = makeCa('cli-other');
  let https: RecordingHttpsServer;
  let httpsUrl: string;
  const machineId = newId();
  const projectId = newId();
  beforeEach(async () => {
    https = new RecordingHttpsServer(ours.serving(), () => JSON.stringify({ machineId, projectId, credential: 'cred-from-https' }));
    httpsUrl = await https.listen();
  });
  afterEach(() => https.close());

  it('validates --pin, --ca-file and --proxy (exit 2, nothing sent)', async () => {
    const base = ['enrol', '--server', httpsUrl, '--token', 't', '--state-dir', dir];
    const bad = async (extra: string[], message: RegExp) => {
      const r = await cli([...base, ...extra]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
    };
    await bad(['--pin', 'not-a-pin'], /--pin "not-a-pin" must be a base64 SHA-256 digest/);
    await bad(['--ca-file', path.join(dir, 'missing.pem')], /--ca-file .*missing.pem: ENOENT/);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'junk.pem'), 'not a certificate');
    await bad(['--ca-file', path.join(dir, 'junk.pem')], /holds no PEM certificate/);
    await bad(['--proxy', 'socks5://p:1080'], /--proxy must be an http\(s\) URL/);
    const plain = await cli(['enrol', '--server', server.url, '--token', 't', '--state-dir', dir, '--pin', ours.pin]);
    expect(plain.code).toBe(2);
    expect(plain.stderr).toMatch(/--pin needs an https:\/\/ --server/);
    expect(https.connections).toBe(0);
    expect(server.enrolments).toHaveLength(0);
  });

  it('enrols through a pinned handshake and keeps the pins and the CA in the state', async () => {
    const r = await cli(['enrol', '--server', httpsUrl, '--token', 'tok-https', '--state-dir', dir, '--pin', ours.pin, '--pin', other.pin, '--ca-file', ours.certFile]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(https.received.join('')).toContain('tok-https');
    expect(readState(dir)).toMatchObject({ server: httpsUrl, machineId, credential: 'cred-from-https', pins: [ours.pin, other.pin], caPem: ours.certPem });
    const status = await cli(['status', '--json', '--state-dir', dir]);
    expect(JSON.parse(status.stdout)).toMatchObject({ pins: [ours.pin, other.pin], ca: 'enrolled', proxy: null });
  });

  it('status shows the pins and a stored proxy without its password', async () => {
    const r = await cli(['enrol', '--server', httpsUrl, '--token', 't', '--state-dir', dir, '--pin', ours.pin, '--ca-file', ours.certFile]);
    expect(r.code).toBe(0);
    writeState(dir, { ...readState(dir)!, proxy: 'http://user:hunter2@proxy.example:3128' });
    const json = JSON.parse((await cli(['status', '--json', '--state-dir', dir])).stdout);
    expect(json).toMatchObject({ pins: [ours.pin], ca: 'enrolled', proxy: 'http://***@proxy.example:3128' });
    const text = (await cli(['status', '--state-dir', dir])).stdout;
    expect(text).toContain(`pins:        ${ours.pin}`);
    expect(text).toContain('proxy:       http://***@proxy.example:3128');
    expect(text).not.toContain('hunter2');
  });

  it('refuses a server that fails the pin with exit 4, sending it nothing, and saves nothing', async () => {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'both.pem'), ours.certPem + other.certPem);
    const r = await cli(['enrol', '--server', httpsUrl, '--token', 'tok-https', '--state-dir', dir, '--pin', other.pin, '--ca-file', path.join(dir, 'both.pem')]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/refusing https:\/\/localhost:\d+: the server localhost presented no certificate with a pinned key.*Nothing was sent to it/);
    expect(https.connections).toBe(1);
    expect(https.bytes).toBe(0);
    expect(readState(dir)).toBeNull();
    // A CA file that does not sign the server's chain: refused the same way.
    const unsigned = await cli(['enrol', '--server', httpsUrl, '--token', 'tok-https', '--state-dir', dir, '--ca-file', other.certFile]);
    expect(unsigned.code).toBe(4);
    expect(unsigned.stderr).toMatch(/refusing .*does not verify against the trusted CA: .*\((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)\)/);
    expect(https.bytes).toBe(0);
    // No trust given and a server the system does not trust: the same exit, and how to trust it.
    const untrusting = await cli(['enrol', '--server', httpsUrl, '--token', 'tok-https', '--state-dir', dir]);
    expect(untrusting.code).toBe(4);
    expect(untrusting.stderr).toMatch(/Nothing was sent to it\. A server with its own CA: enrol with its CA and pins/);
    expect(https.bytes).toBe(0);
  });
});

describe('status and run', () => {
  it('status exits 1 when not enrolled', async () => {
    const r = await cli(['status', '--state-dir', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/not enrolled/);
    expect((await cli(['run', '--state-dir', dir])).code).toBe(1);
  });

  it('run connects, status shows it alive, a second run is refused, and abort stops it', async () => {
    server.enrolTokens.set('tok-3', newId());
    expect((await cli(['enrol', '--server', server.url, '--token', 'tok-3', '--state-dir', dir])).code).toBe(0);
    const credential = readState(dir)!.credential;

    const before = await cli(['status', '--state-dir', dir]);
    expect(before.code).toBe(0);
    expect(before.stdout).toMatch(/agent:\s+not running/);
    expect(before.stdout).toContain(readState(dir)!.machineId);
    expect(before.stdout).not.toContain(credential);

    const logs: string[] = [];
    const stop = new AbortController();
    const running = cli(['run', '--state-dir', dir], {
      stopSignal: stop.signal,
      env: { KAPITAN_AGENT_LOG_LEVEL: 'debug', KAPITAN_AGENT_HEARTBEAT_MS: '50' },
      logWrite: (l) => logs.push(l),
    });
    await waitFor(() => server.heartbeats >= 2, 'heartbeats');
    expect(server.hellos[0]!.facts.agentVersion).toMatch(/^\d+\.\d+\.\d+/);

    const status = await cli(['status', '--state-dir', dir, '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ running: true, pid: process.pid, server: server.url });
    expect(status.stdout).not.toContain(credential);

    const second = await cli(['run', '--state-dir', dir], { env: {} });
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/another kapitan-agent run process/);

    stop.abort();
    expect((await running).code).toBe(0);
    expect(fs.existsSync(path.join(dir, PID_FILE))).toBe(false);
    for (const line of logs) {
      const entry = JSON.parse(line) as { level: string; msg: string; time: string };
      expect(entry).toMatchObject({ level: expect.any(String), msg: expect.any(String), time: expect.any(String) });
    }
    expect(logs.join('')).not.toContain(credential);
    expect(logs.some((l) => l.includes('connected to the server'))).toBe(true);
  });

  it('run refuses an invalid tunable with exit code 2', async () => {
    server.enrolTokens.set('tok-4', newId());
    await cli(['enrol', '--server', server.url, '--token', 'tok-4', '--state-dir', dir]);
    const r = await cli(['run', '--state-dir', dir], { env: { KAPITAN_AGENT_OUTBOX_BYTES: 'lots' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/KAPITAN_AGENT_OUTBOX_BYTES/);
  });

  it('run refuses to start (exit 5) with a policy file the agent could change or that does not parse; a safe one is reported in the hello', async () => {
    server.enrolTokens.set('tok-7', newId());
    expect((await cli(['enrol', '--server', server.url, '--token', 'tok-7', '--state-dir', dir])).code).toBe(0);
    const policyDir = fs.mkdtempSync(path.join(path.dirname(dir), 'policy-'));
    const file = path.join(policyDir, 'agent-policy.json');
    const env = { KAPITAN_AGENT_POLICY_FILE: file, KAPITAN_AGENT_HEARTBEAT_MS: '50' };
    fs.writeFileSync(file, '{ "scripts": { "enabled": false } }');
    fs.chmodSync(file, 0o666);
    const handshakes = server.handshakes;
    const writable = await cli(['run', '--state-dir', dir], { env });
    expect(writable.code).toBe(5);
    expect(writable.stderr).toContain(`refusing to start: client policy ${file}: the file is writable by group or others`);
    fs.chmodSync(file, 0o644);
    fs.writeFileSync(file, '{ "scripts": { "enabld": false } }');
    const typo = await cli(['run', '--state-dir', dir], { env });
    expect(typo.code).toBe(5);
    expect(typo.stderr).toMatch(/does not match the policy format: scripts: .*"enabld"/);
    expect(server.handshakes).toBe(handshakes); // refused before dialling
    expect(fs.existsSync(path.join(dir, PID_FILE))).toBe(false);

    fs.writeFileSync(file, '{ "scripts": { "enabled": false } }');
    const stop = new AbortController();
    let reload: (() => void) | null = null;
    const logs: string[] = [];
    const running = cli(['run', '--state-dir', dir], { env, stopSignal: stop.signal, logWrite: (l) => logs.push(l), onReload: (h) => (reload = h) });
    await waitFor(() => server.hellos.length >= 1, 'a hello');
    expect(server.hellos[0]!.policy).toMatchObject({ path: file, found: true, sha256: expect.stringMatching(/^[0-9a-f]{64}$/), effective: { scripts: { enabled: false } } });

    // A reload (SIGHUP) of an unsafe file keeps the policy in force and says so; a valid one is reported at once (the agent redials).
    fs.chmodSync(file, 0o666);
    reload!();
    expect(logs.some((l) => l.includes('client policy not reloaded: keeping the policy in force') && l.includes('writable by group or others'))).toBe(true);
    fs.chmodSync(file, 0o644);
    fs.writeFileSync(file, '{ "readOnly": true }');
    reload!();
    await waitFor(() => server.hellos.length >= 2, 'a second hello');
    expect(server.hellos.at(-1)!.policy).toMatchObject({ path: file, found: true, effective: { readOnly: true, scripts: { enabled: true } } });
    stop.abort();
    expect((await running).code).toBe(0);
  });

  it('run revoked by the server stops, records it, exits 3; later runs refuse to start with exit 3 until enrolled again', async () => {
    server.enrolTokens.set('tok-5', newId());
    expect((await cli(['enrol', '--server', server.url, '--token', 'tok-5', '--state-dir', dir])).code).toBe(0);
    const { credential, machineId } = readState(dir)!;
    const logs: string[] = [];
    const running = cli(['run', '--state-dir', dir], { env: { KAPITAN_AGENT_HEARTBEAT_MS: '50' }, logWrite: (l) => logs.push(l) });
    await waitFor(() => server.heartbeats >= 1, 'a heartbeat');
    server.revokeForGood(credential, 'the project of this machine was deleted');
    const r = await running;
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(new RegExp(`${machineId}\\) was revoked .*the project of this machine was deleted.*enrol --force`));
    expect(readState(dir)!.revoked).toMatchObject({ reason: 'the project of this machine was deleted', at: expect.any(String) });
    expect(logs.some((l) => l.includes('the server revoked this machine'))).toBe(true);
    expect(fs.existsSync(path.join(dir, PID_FILE))).toBe(false);

    const handshakes = server.handshakes;
    const again = await cli(['run', '--state-dir', dir]);
    expect(again.code).toBe(3);
    expect(again.stderr).toMatch(/was revoked .* will not connect again/);
    expect(server.handshakes).toBe(handshakes); // refused before dialling
    expect((await cli(['status', '--state-dir', dir])).stdout).toMatch(/revoked: .*project of this machine was deleted/);

    // Enrolling again clears it.
    server.enrolTokens.set('tok-6', newId());
    expect((await cli(['enrol', '--server', server.url, '--token', 'tok-6', '--state-dir', dir, '--force'])).code).toBe(0);
    expect(readState(dir)!.revoked).toBeUndefined();
  });
});
