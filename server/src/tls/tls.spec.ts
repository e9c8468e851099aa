import { InstanceTlsSchema } from '@kapitan/shared';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { io } from 'socket.io-client';
import { ConfigError, loadConfig } from '../config/config';
import { bearer, createTestApp, signupUser, TestApp } from '../testing/test-app';
import { configuredMaterial, generatedMaterial, RENEW_BEFORE_DAYS, servingNames, spkiPin } from './tls-material';
import { TlsService } from './tls.service';

const DAY = 24 * 3600_000;

/** The certificate chain a TLS server presents, trusting only `ca`. */
function handshake(port: number, ca: string | undefined, servername = 'localhost'): Promise<{ leaf: X509Certificate; chain: X509Certificate[]; authorized: boolean; error?: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: false }, () => {
      const peer = socket.getPeerX509Certificate()!;
      const chain: X509Certificate[] = [];
      let c: tls.DetailedPeerCertificate | undefined = socket.getPeerCertificate(true);
      while (c?.raw && !chain.some((x) => x.raw.equals(c!.raw))) {
        chain.push(new X509Certificate(c.raw));
        c = c.issuerCertificate;
      }
      resolve({ leaf: peer, chain, authorized: socket.authorized, error: socket.authorizationError?.toString() });
      socket.end();
    });
    socket.on('error', reject);
  });
}

function get(port: number, path: string, ca: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path, servername: 'localhost', ca, headers }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      })
      .on('error', reject);
  });
}

describe('TLS configuration', () => {
  const base = { KAPITAN_DATA_DIR: mkdtempSync(join(tmpdir(), 'kapitan-tls-config-')) };
  afterAll(() => rmSync(base.KAPITAN_DATA_DIR, { recursive: true, force: true }));
  const refused = (env: Record<string, string>, variable: string) => {
    expect(() => loadConfig({ ...base, ...env })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, ...env })).toThrow(new RegExp(`${variable}: `));
  };

  it('names the bad variable', () => {
    refused({ HTTPS_PORT: '70000' }, 'HTTPS_PORT');
    refused({ HTTPS_PORT: 'on' }, 'HTTPS_PORT');
    refused({ KAPITAN_TLS_CERT: '/x.pem' }, 'KAPITAN_TLS_KEY');
    refused({ KAPITAN_TLS_KEY: '/x.key' }, 'KAPITAN_TLS_CERT');
    refused({ KAPITAN_PUBLIC_URL: 'kapitan.example.com' }, 'KAPITAN_PUBLIC_URL');
    refused({ KAPITAN_PUBLIC_URL: 'https://kapitan.example.com/sub/path' }, 'KAPITAN_PUBLIC_URL');
    refused({ KAPITAN_PUBLIC_URL: 'https://user:pw@kapitan.example.com' }, 'KAPITAN_PUBLIC_URL');
  });

  it('defaults: HTTPS on 8443, the public URL from this host; off means off', () => {
    const c = loadConfig(base);
    expect(c.tls.httpsPort).toBe(8443);
    expect(c.tls.publicUrl).toMatch(/^https:\/\/[^/]+:8443$/);
    const off = loadConfig({ ...base, HTTPS_PORT: 'off', PORT: '9000' });
    expect(off.tls).toMatchObject({ httpsPort: null, publicUrl: 'http://localhost:9000' });
    expect(loadConfig({ ...base, KAPITAN_PUBLIC_URL: 'https://Kapitan.Example.com:443/' }).tls).toMatchObject({ publicUrl: 'https://kapitan.example.com', publicHost: 'kapitan.example.com' });
  });
});

describe('generated TLS material (instance CA)', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'kapitan-tls-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is made once and kept: the same pins and certificate on the next start, keys 0600', async () => {
    const names = servingNames('kapitan.example.com');
    const first = await generatedMaterial(dir, names);
    const again = await generatedMaterial(dir, names);
    expect(first.pins.map((p) => p.role)).toEqual(['current', 'next']);
    expect(new Set(first.pins.map((p) => p.spkiSha256)).size).toBe(2);
    expect(again.pins).toEqual(first.pins);
    expect(again.serving.fingerprint256).toBe(first.serving.fingerprint256);
    for (const f of ['ca.key', 'ca-next.key', 'server.key', 'ca.crt', 'server.crt']) expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);

    const ca = new X509Certificate(readFileSync(join(dir, 'ca.crt')));
    expect(ca.ca).toBe(true);
    expect(first.serving.ca).toBe(false);
    expect(first.serving.checkIssued(ca)).toBe(true);
    expect(first.serving.verify(ca.publicKey)).toBe(true);
    expect(spkiPin(ca)).toBe(first.pins[0].spkiSha256);
    for (const n of ['kapitan.example.com', 'localhost']) expect(first.serving.checkHost(n)).toBe(n);
    expect(first.serving.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(first.serving.checkHost('evil.example.com')).toBeUndefined();
  });

  it('renews the serving certificate when it is due or the public host changed; the pins stay', async () => {
    const first = await generatedMaterial(dir, servingNames('a.example.com'));
    const notAfter = Date.parse(first.serving.validTo);
    const early = await generatedMaterial(dir, servingNames('a.example.com'), notAfter - (RENEW_BEFORE_DAYS + 1) * DAY);
    expect(early.serving.fingerprint256).toBe(first.serving.fingerprint256);
    const due = await generatedMaterial(dir, servingNames('a.example.com'), notAfter - (RENEW_BEFORE_DAYS - 1) * DAY);
    expect(due.serving.fingerprint256).not.toBe(first.serving.fingerprint256);
    expect(Date.parse(due.serving.validTo)).toBeGreaterThan(notAfter);
    expect(due.pins).toEqual(first.pins);
    const moved = await generatedMaterial(dir, servingNames('b.example.com'));
    expect(moved.serving.checkHost('b.example.com')).toBe('b.example.com');
    expect(moved.pins).toEqual(first.pins);
  });

  it('a configured certificate: its key must match; its issuers are what is pinned', async () => {
    const made = await generatedMaterial(dir, servingNames('c.example.com'));
    const certFile = join(dir, 'chain.pem');
    writeFileSync(certFile, readFileSync(join(dir, 'server.crt'), 'utf8') + readFileSync(join(dir, 'ca.crt'), 'utf8'));
    const m = configuredMaterial(certFile, join(dir, 'server.key'));
    expect(m.source).toBe('configured');
    expect(m.pins).toEqual([expect.objectContaining({ role: 'chain', spkiSha256: made.pins[0].spkiSha256 })]);
    expect(() => configuredMaterial(certFile, join(dir, 'ca.key'))).toThrow(/is not the key of the certificate/);
    writeFileSync(join(dir, 'empty.pem'), 'nothing here');
    expect(() => configuredMaterial(join(dir, 'empty.pem'), join(dir, 'server.key'))).toThrow(/holds no PEM certificate/);
  });
});

describe('HTTPS beside HTTP (one app)', () => {
  let t: TestApp;
  let port: number;
  let ca: string;

  beforeAll(async () => {
    t = await createTestApp({ database: 'sqlite', env: { HTTPS_PORT: '0', KAPITAN_PUBLIC_URL: 'https://localhost:8443' } });
    port = (await t.app.get(TlsService).listen(t.app.getHttpServer(), '127.0.0.1'))!;
    ca = t.app.get(TlsService).info().caPem!;
  });
  afterAll(() => t?.close());

  it('serves the API over TLS with a chain the instance CA verifies, and not to a client trusting only the public CAs', async () => {
    const h = await handshake(port, ca);
    expect(h.authorized).toBe(true);
    expect(h.leaf.checkHost('localhost')).toBe('localhost');
    expect(h.leaf.checkIssued(new X509Certificate(ca))).toBe(true);
    expect(spkiPin(new X509Certificate(ca))).toBe(t.app.get(TlsService).info().pins[0].spkiSha256);
    const plain = await handshake(port, undefined);
    expect(plain.authorized).toBe(false);
    expect(plain.error).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|unable to get local issuer/i);

    const health = await get(port, '/api/health', ca);
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ status: 'ok' });
  });

  it('GET /api/instance/tls: pins, serving certificate and CA for a signed-in user; 401 without', async () => {
    expect((await t.http.get('/api/instance/tls')).status).toBe(401);
    const { token } = await signupUser(t.http);
    const res = await t.http.get('/api/instance/tls').set(bearer(token));
    expect(res.status).toBe(200);
    const info = InstanceTlsSchema.strict().parse(res.body);
    expect(info).toMatchObject({ enabled: true, httpsPort: port, publicUrl: 'https://localhost:8443', source: 'generated' });
    const served = await handshake(port, ca);
    expect(info.serving!.fingerprint256).toBe(served.leaf.fingerprint256);
    expect(info.pins.map((p) => p.role)).toEqual(['current', 'next']);
  });

  it('socket.io upgrades over TLS like over HTTP (an agent without credentials is refused by the gateway, not by TLS)', async () => {
    const socket = io(`https://localhost:${port}/agent`, { transports: ['websocket'], ca, reconnection: false, auth: {} });
    const outcome = await new Promise<string>((resolve) => {
      socket.on('connect', () => resolve('connected'));
      socket.on('connect_error', (err) => resolve(`refused: ${err.message}`));
      socket.on('disconnect', (reason) => resolve(`disconnected: ${reason}`));
    });
    socket.close();
    expect(outcome).not.toMatch(/certificate|self-signed|TLS|websocket error/i);
    expect(outcome).toMatch(/refused|disconnected/);
  });

  it('a renewal swaps the certificate for new connections without a restart; the pins stay', async () => {
    const svc = t.app.get(TlsService);
    const before = svc.info();
    await svc.refresh(Date.parse(before.serving!.notAfter) - DAY);
    const after = svc.info();
    expect(after.serving!.fingerprint256).not.toBe(before.serving!.fingerprint256);
    expect(after.pins).toEqual(before.pins);
    expect((await handshake(port, ca)).leaf.fingerprint256).toBe(after.serving!.fingerprint256);
    expect((await get(port, '/api/health', ca)).status).toBe(200);
  });
});
