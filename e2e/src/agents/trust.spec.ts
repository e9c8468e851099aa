/**
 * Agents that pin the server's CA key, against the real HTTPS server
 * (threat model T60–T64): a pinned agent enrols, connects, runs a script
 * and downloads a file; an impostor at the server's address, or a
 * TLS-inspecting proxy whose CA is not pinned, is refused with exit 4 and
 * receives not one byte after its handshake (no token, no credential);
 * a renewed serving certificate, and a CA key rotated to the published
 * `next` key, need no reinstall; HTTP CONNECT proxies carry enrolment,
 * socket and downloads.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { InstanceTlsSchema, isFinalDelivery, type CreatedApiToken, type Delivery, type InstanceTls } from '@kapitan/shared';
import {
  freePort,
  makeTempDir,
  makeTestCa,
  REPO_ROOT,
  removeDir,
  requirement,
  startAgent,
  startConnectProxy,
  startRecordingTlsServer,
  startServer,
  startTcpRelay,
  waitFor,
  type ProcessExit,
  type TestAgent,
  type TestServer,
} from '../harness';
import { setupProject, startOnlineAgent, waitForFinal, type TestProject } from './fixtures';

const EXIT_UNTRUSTED = 4;
const SEA = path.join(REPO_ROOT, 'agent/dist/sea/kapitan-agent');
const BUNDLE = path.join(REPO_ROOT, 'agent/dist/bundle/kapitan-agent.cjs');

async function exitOf(agent: TestAgent, timeoutMs = 30_000): Promise<ProcessExit> {
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

const connections = (agent: TestAgent): number => agent.managed.logs().split('\n').filter((l) => l.includes('"connected to the server"')).length;

describe('agent trust over the real HTTPS server (SQLite)', () => {
  let server: TestServer;
  let p: TestProject;
  let httpsPort: number;
  let httpsUrl: string;
  let tlsInfo: InstanceTls;
  let dir: string;
  let caFile: string;
  const agents: TestAgent[] = [];

  const instanceTls = async (): Promise<InstanceTls> => InstanceTlsSchema.parse((await p.api.request('GET', '/api/instance/tls')).body);
  /** What a client bundle gives its agent: every published pin and the CA file. */
  const pinArgs = (): string[] => [...tlsInfo.pins.flatMap((pin) => ['--pin', pin.spkiSha256]), '--ca-file', caFile];
  const online = async (url: string, options: Parameters<typeof startOnlineAgent>[2] = {}): Promise<TestAgent> => {
    const agent = await startOnlineAgent(url, p, { enrolArgs: pinArgs(), ...options });
    agents.push(agent);
    return agent;
  };
  const runs = async (agent: TestAgent, word: string): Promise<void> => {
    const run = await p.api.createExecution(p.projectId, { script: `echo ${word}`, targets: { machineIds: [agent.machineId] } });
    const e = await waitForFinal(p, run.executions[0].id);
    expect(e).toMatchObject({ status: 'succeeded', exitCode: 0 });
    expect(await p.api.getExecutionLogText(e.id)).toBe(`${word}\n`);
  };
  /** A deploy: the agent downloads the file with its FileCache, over the same trust and proxy. */
  const downloads = async (agent: TestAgent): Promise<void> => {
    const bytes = Buffer.from(`deployed ${Date.now()} ${Math.random()}\n`);
    const file = await p.api.uploadFile(p.projectId, 'file', 'deployed.txt', bytes);
    const target = path.join(agent.stateDir, 'deploys', `${file.sha256.slice(0, 12)}.txt`);
    const res = await p.api.request<Delivery>('POST', `/api/projects/${p.projectId}/deploys`, { body: { fileId: file.id, targets: { machineIds: [agent.machineId] }, path: target } });
    expect(res.status).toBe(201);
    const part = await waitFor(
      async () => {
        const d = (await p.api.request<Delivery>('GET', `/api/deliveries/${res.body.id}`)).body;
        return d.machines.length && isFinalDelivery(d.machines[0]!.status) ? d.machines[0]! : null;
      },
      { timeoutMs: 60_000, intervalMs: 100, message: `delivery ${res.body.id} to end` },
    );
    expect(part).toMatchObject({ status: 'succeeded', receivedBytes: bytes.length });
    expect(fs.readFileSync(target)).toEqual(bytes);
    expect(agent.logs()).toContain('file downloaded and verified');
  };
  /** `enrol` alone, expected to fail: its exit code and output. */
  const enrolFails = async (url: string, args: string[], env: Record<string, string | undefined> = {}): Promise<string> => {
    const token = (await p.api.createEnrolmentToken(p.projectId)).token;
    const error = await startAgent({ serverUrl: url, token, enrolArgs: args, env }).then(
      (a) => {
        agents.push(a);
        throw new Error('enrol succeeded');
      },
      (e: Error) => e.message,
    );
    expect(error).toMatch(new RegExp(`enrol failed \\(code ${EXIT_UNTRUSTED}`));
    expect(error).toMatch(/Nothing was sent to it/);
    return error;
  };

  beforeAll(async () => {
    httpsPort = await freePort();
    server = await startServer({ database: 'sqlite', env: { HTTPS_PORT: String(httpsPort), LOG_LEVEL: 'warn' } });
    httpsUrl = `https://localhost:${httpsPort}`;
    p = await setupProject(server.url, 'trust');
    tlsInfo = await instanceTls();
    dir = await makeTempDir('kapitan-e2e-trust-');
    caFile = path.join(dir, 'ca.pem');
    fs.writeFileSync(caFile, tlsInfo.caPem!);
  });
  afterAll(async () => {
    for (const a of agents) await a.dispose();
    await server?.dispose();
    if (dir) await removeDir(dir);
  });

  test('a pinned agent enrols over HTTPS, connects, runs a script and downloads a file; the pins and CA are in its state', async () => {
    expect(tlsInfo.pins.map((x) => x.role)).toEqual(['current', 'next']);
    const agent = await online(httpsUrl);
    await runs(agent, 'pinned');
    await downloads(agent);
    const state = JSON.parse(fs.readFileSync(path.join(agent.stateDir, 'state.json'), 'utf8'));
    expect(state).toMatchObject({ server: httpsUrl, pins: tlsInfo.pins.map((x) => x.spkiSha256), caPem: tlsInfo.caPem });
  });

  test('the README recipe, run as written: a pinned enrolment from GET /api/instance/tls', async () => {
    const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
    const script = /<!-- recipe: pinned-enrol -->\n```sh\n([\s\S]*?)```/.exec(readme)?.[1];
    if (!script) throw new Error('README.md has no recipe "pinned-enrol"');
    const work = await makeTempDir('kapitan-e2e-recipe-');
    try {
      const bin = path.join(work, 'bin');
      fs.mkdirSync(bin);
      fs.writeFileSync(path.join(bin, 'kapitan-agent'), `#!/bin/sh\nexec "${process.execPath}" "${path.join(REPO_ROOT, 'agent/dist/main.js')}" "$@"\n`, { mode: 0o755 });
      const apiToken = (await p.api.request<CreatedApiToken>('POST', '/api/tokens', { body: { name: 'recipe', projectId: p.projectId, role: 'operator' } })).body.token;
      const env = {
        PATH: `${bin}:${process.env.PATH}`,
        HOME: work,
        KAPITAN_URL: server.url,
        KAPITAN_TOKEN: apiToken,
        AGENT_SERVER_URL: httpsUrl,
        ENROL_TOKEN: (await p.api.createEnrolmentToken(p.projectId)).token,
        KAPITAN_AGENT_STATE_DIR: path.join(work, 'state'),
      };
      const out = execFileSync('bash', ['-c', script], { cwd: work, env, encoding: 'utf8' });
      expect(out).toMatch(/enrolled machine /);
      const state = JSON.parse(fs.readFileSync(path.join(work, 'state', 'state.json'), 'utf8'));
      expect(state).toMatchObject({ server: httpsUrl, pins: tlsInfo.pins.map((x) => x.spkiSha256), caPem: tlsInfo.caPem });
    } finally {
      await removeDir(work);
    }
  });

  test('an impostor at the server’s address: run exits 4 and enrol exits 4, and it receives nothing after the handshake', async () => {
    const relay = await startTcpRelay(httpsPort);
    const url = `https://localhost:${relay.port}`;
    const agent = await online(url);
    await runs(agent, 'through-the-relay');

    const impostor = await startRecordingTlsServer(makeTestCa('impostor').serving());
    relay.switchTo(impostor.port); // cuts the agent's connection: it dials again and meets the impostor
    const exit = await exitOf(agent);
    expect(exit.code).toBe(EXIT_UNTRUSTED);
    expect(agent.logs()).toMatch(/the server failed the enrolled pins or CA/);
    expect(agent.logs()).toMatch(/refusing https:\/\/localhost:\d+: its certificate does not verify against the trusted CA/);
    expect(impostor.connections).toBeGreaterThanOrEqual(1);
    expect(impostor.received.length).toBe(0); // not the websocket upgrade, not the credential

    // Started again by its supervisor: the same refusal, still nothing sent.
    await agent.restart();
    expect((await exitOf(agent)).code).toBe(EXIT_UNTRUSTED);
    // A fresh enrolment against it: the token is never written.
    await enrolFails(url, pinArgs());
    expect(impostor.connections).toBeGreaterThanOrEqual(3);
    expect(impostor.received.length).toBe(0);
    // The recorder does see what a client that ignores trust sends.
    const careless = tls.connect({ host: '127.0.0.1', port: impostor.port, rejectUnauthorized: false }, () => careless.write('probe'));
    careless.on('error', () => undefined);
    await waitFor(() => impostor.received.toString().includes('probe'), { timeoutMs: 10_000, message: 'the impostor to record a careless client' });
    careless.destroy();

    // The real server back behind the address: the same agent, no reinstall.
    relay.switchTo(httpsPort);
    await agent.restart();
    await waitFor(() => connections(agent) >= 1, { timeoutMs: 30_000, message: 'the agent to reconnect to the real server' });
    await runs(agent, 'back');
    await impostor.close();
    await relay.close();
  });

  test('a renewed serving certificate (new key, same CA): the agent reconnects, no reinstall', async () => {
    const agent = await online(httpsUrl);
    const before = connections(agent);
    const tlsDir = path.join(server.dataDir, 'tls');
    fs.rmSync(path.join(tlsDir, 'server.crt'));
    fs.rmSync(path.join(tlsDir, 'server.key'));
    await server.restart(); // renews the missing serving certificate at start
    const renewed = await instanceTls();
    expect(renewed.serving!.fingerprint256).not.toBe(tlsInfo.serving!.fingerprint256);
    expect(renewed.pins).toEqual(tlsInfo.pins);
    await waitFor(() => connections(agent) > before, { timeoutMs: 60_000, message: 'the agent to reconnect after the renewal' });
    await runs(agent, 'renewed');
  });

  test('through an HTTP CONNECT proxy from HTTPS_PROXY: enrolment, socket and downloads; NO_PROXY bypasses it', async () => {
    const proxy = await startConnectProxy();
    const agent = await online(httpsUrl, { env: { HTTPS_PROXY: proxy.url, NO_PROXY: undefined, no_proxy: undefined } });
    await runs(agent, 'proxied');
    await downloads(agent);
    const target = `localhost:${httpsPort}`;
    // enrolment, the socket, the download: each its own CONNECT
    expect(proxy.connects.filter((c) => c === target).length).toBeGreaterThanOrEqual(3);
    expect(proxy.connects.every((c) => c === target)).toBe(true);

    const seen = proxy.connects.length;
    const direct = await online(httpsUrl, { env: { HTTPS_PROXY: proxy.url, NO_PROXY: 'localhost' } });
    await runs(direct, 'bypassed');
    expect(proxy.connects.length).toBe(seen);
    await proxy.close();
  });

  test('the standalone executable with --proxy stored at enrolment, and no proxy in its environment', async () => {
    if (!fs.existsSync(SEA)) throw new Error(`${SEA} is missing: npm run build -w agent`);
    const proxy = await startConnectProxy();
    const agent = await online(httpsUrl, {
      entry: SEA,
      launcher: [],
      enrolArgs: [...pinArgs(), '--proxy', proxy.url],
      env: { HTTPS_PROXY: undefined, https_proxy: undefined },
    });
    await runs(agent, 'standalone-proxied');
    expect(proxy.connects.length).toBeGreaterThanOrEqual(2);
    expect(JSON.parse(fs.readFileSync(path.join(agent.stateDir, 'state.json'), 'utf8')).proxy).toBe(proxy.url);
    await agent.stop();
    await proxy.close();
  });

  test('the bundle on the machine’s Node through HTTPS_PROXY (the lazily loaded proxy library is in the bundle)', async () => {
    const systemNode = '/usr/bin/node';
    const reason = requirement(`${systemNode} (Node >= 20)`, fs.existsSync(systemNode) ? null : `no ${systemNode}`);
    if (reason) return;
    const proxy = await startConnectProxy();
    const agent = await online(httpsUrl, { entry: BUNDLE, launcher: [systemNode], env: { HTTPS_PROXY: proxy.url, NO_PROXY: undefined, no_proxy: undefined } });
    await runs(agent, 'bundle-proxied');
    await downloads(agent);
    expect(proxy.connects.length).toBeGreaterThanOrEqual(3);
    await agent.stop();
    await proxy.close();
  });

  test('a TLS-inspecting proxy: refused unless its CA is both trusted and pinned; then it works', async () => {
    const inspectingCa = makeTestCa('inspecting');
    const proxy = await startConnectProxy({ inspect: { material: inspectingCa.serving(), upstreamCa: tlsInfo.caPem! } });
    const bothCas = path.join(dir, 'with-proxy-ca.pem');
    fs.writeFileSync(bothCas, tlsInfo.caPem! + inspectingCa.certPem);
    const env = { HTTPS_PROXY: proxy.url, NO_PROXY: undefined, no_proxy: undefined };

    // Trusted (its CA is in the file) but not pinned: the pin check alone refuses it, before the token.
    const message = await enrolFails(httpsUrl, [...tlsInfo.pins.flatMap((x) => ['--pin', x.spkiSha256]), '--ca-file', bothCas], env);
    expect(message).toContain(`presented no certificate with a pinned key (presented keys: `);
    expect(message).toContain(inspectingCa.pin);
    expect(proxy.connects.length).toBe(1);
    expect(proxy.decrypted.length).toBe(0);

    // The client's own proxy, pinned on purpose: enrolment, socket and downloads through it.
    const agent = await online(httpsUrl, { enrolArgs: ['--pin', inspectingCa.pin, '--ca-file', bothCas], env });
    await runs(agent, 'inspected');
    await downloads(agent);
    expect(proxy.decrypted.toString()).toContain('POST /api/agent/enrol');
    await proxy.close();
  });

  // Last: it changes the server's CA for good.
  test('the CA key rotated to the published next key: an agent that pinned both reconnects; one that pinned only the old key exits 4', async () => {
    const both = await online(httpsUrl);
    const onlyOld = await online(httpsUrl, { enrolArgs: ['--pin', tlsInfo.pins[0]!.spkiSha256, '--ca-file', caFile] });
    const before = connections(both);
    const tlsDir = path.join(server.dataDir, 'tls');
    for (const ext of ['key', 'crt']) fs.renameSync(path.join(tlsDir, `ca-next.${ext}`), path.join(tlsDir, `ca.${ext}`));
    await server.restart(); // the promoted key signs a new serving certificate; a new next key is made
    const rotated = await instanceTls();
    expect(rotated.pins[0]!.spkiSha256).toBe(tlsInfo.pins[1]!.spkiSha256);
    expect(rotated.pins[1]!.spkiSha256).not.toBe(tlsInfo.pins[0]!.spkiSha256);
    await waitFor(() => connections(both) > before, { timeoutMs: 60_000, message: 'the agent pinning both keys to reconnect' });
    await runs(both, 'rotated');
    const exit = await exitOf(onlyOld, 60_000);
    expect(exit.code).toBe(EXIT_UNTRUSTED);
    expect(onlyOld.logs()).toMatch(/presented no certificate with a pinned key/);
  });
});
