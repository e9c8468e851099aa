/**
 * Bundles and one-line installs against the real app and database: who may
 * make them, what the zip holds and with which modes, the enrolment token
 * each carries (recorded, listed by purpose, revocable, expiring, used up),
 * and the served script and agent download that stop working with their
 * token. The agent files are small stand-ins here; e2e/src/agents/bundle.spec.ts
 * installs and runs the real ones.
 */
import { BundleConfigSchema, CreatedApiTokenSchema, EnrolmentTokenSchema, InstallLinkSchema, type MachineFacts } from '@kapitan/shared';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yauzl from 'yauzl';
import { EnrolmentTokenEntity } from '../machines/machine.entity';
import { bearer, createTestApp, describeBothDatabases, expectError, expectValidationError, signupUser, TestApp } from '../testing/test-app';
import { TlsService } from '../tls/tls.service';
import { redactInstallToken } from './redact';

type Person = Awaited<ReturnType<typeof signupUser>>;

const FACTS: MachineFacts = {
  hostname: 'bundle-host',
  os: 'Debian',
  platform: 'linux',
  kernel: '6.1',
  arch: 'x64',
  cpus: 2,
  memoryBytes: 1024,
  agentVersion: 'spec',
  dockerAvailable: false,
};

interface Entry {
  name: string;
  mode: number;
  data: Buffer;
}

function readZip(buf: Buffer): Promise<Entry[]> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(buf, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err ?? new Error('no zip'));
      const entries: Entry[] = [];
      zip.on('entry', (e: yauzl.Entry) => {
        zip.openReadStream(e, (err2, stream) => {
          if (err2 || !stream) return reject(err2 ?? new Error('no stream'));
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => {
            entries.push({ name: e.fileName, mode: (e.externalFileAttributes >>> 16) & 0o7777, data: Buffer.concat(chunks) });
            zip.readEntry();
          });
        });
      });
      zip.on('end', () => resolve(entries));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}

/** Bytes for a download; the JSON error shape for an error. */
const binary = (response: unknown, cb: (err: Error | null, body: unknown) => void) => {
  const res = response as NodeJS.ReadableStream & { headers?: Record<string, string> };
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => {
    const buf = Buffer.concat(chunks);
    cb(null, /json/.test(res.headers?.['content-type'] ?? '') ? JSON.parse(buf.toString()) : buf);
  });
};

describeBothDatabases('bundles and one-line installs', (database) => {
  let t: TestApp;
  let dist: string;
  let alice: Person; // owner
  let bob: Person; // operator
  let vera: Person; // viewer
  let eve: Person; // not a member
  let projectId: string;
  const EXE = Buffer.from('#!/bin/sh\necho standalone\n');
  const CJS = Buffer.from('console.log("cjs")\n');
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

  const tokens = () => t.db.getRepository(EnrolmentTokenEntity);
  const getBundle = (who: string, query = '') => t.http.get(`/api/projects/${projectId}/bundle${query}`).set(bearer(who)).buffer(true).parse(binary);
  const enrol = (token: string) => t.http.post('/api/agent/enrol').send({ token, facts: FACTS });
  const tokenOf = (url: string) => /\/api\/install\/(.+)\.sh$/.exec(url)![1]!;

  beforeAll(async () => {
    const root = mkdtempSync(join(tmpdir(), 'kapitan-bundle-spec-'));
    dist = join(root, 'agent/dist');
    mkdirSync(join(dist, 'bun'), { recursive: true });
    mkdirSync(join(dist, 'bundle'), { recursive: true });
    writeFileSync(join(dist, 'bun/kapitan-agent'), EXE);
    writeFileSync(join(dist, 'bundle/kapitan-agent.cjs'), CJS);
    writeFileSync(join(root, 'agent/package.json'), JSON.stringify({ version: '9.8.7' }));
    t = await createTestApp({ database, env: { HTTPS_PORT: '0', KAPITAN_PUBLIC_URL: 'https://localhost:8443', KAPITAN_AGENT_DIST_DIR: dist } });
    [alice, bob, vera, eve] = [await signupUser(t.http), await signupUser(t.http), await signupUser(t.http), await signupUser(t.http)];
    projectId = (await t.http.post('/api/projects').set(bearer(alice.token)).send({ name: 'P' }).expect(201)).body.id;
    for (const [p, role] of [[bob, 'operator'], [vera, 'viewer']] as const) {
      await t.http.post(`/api/projects/${projectId}/members`).set(bearer(alice.token)).send({ email: p.email, role }).expect(201);
    }
  });
  afterAll(async () => {
    await t?.close();
    if (dist) rmSync(join(dist, '../..'), { recursive: true, force: true });
  });

  test('the zip: everything in one folder, modes 0755 / 0644 (0600 for the token), config, CA and a listed bundle token', async () => {
    const res = await getBundle(alice.token).expect(200);
    expect(res.headers['content-type']).toBe('application/zip');
    expect(res.headers['content-disposition']).toMatch(/^attachment; filename="kapitan-agent-[0-9a-f]{8}\.zip"$/);
    const entries = await readZip(res.body as Buffer);
    const byName = new Map(entries.map((e) => [e.name, e]));
    expect([...byName.keys()].sort()).toEqual(
      [
        'README.txt',
        'agent-policy.json',
        'ca.pem',
        'enrolment-token',
        'install.sh',
        'kapitan-agent',
        'kapitan-agent.cjs',
        'kapitan-agent.service',
        'kapitan.json',
        'uninstall.sh',
      ].map((n) => `kapitan-agent/${n}`),
    );
    for (const e of entries) {
      expect(e.name).not.toMatch(/^\/|(^|\/)\.\.(\/|$)|\\/);
      expect(e.mode & 0o002).toBe(0);
      const want = /\/(kapitan-agent|kapitan-agent\.cjs|install\.sh|uninstall\.sh)$/.test(e.name) ? 0o755 : e.name.endsWith('/enrolment-token') ? 0o600 : 0o644;
      expect({ name: e.name, mode: e.mode.toString(8) }).toEqual({ name: e.name, mode: want.toString(8) });
    }
    expect(byName.get('kapitan-agent/kapitan-agent')!.data).toEqual(EXE);
    expect(byName.get('kapitan-agent/kapitan-agent.cjs')!.data).toEqual(CJS);

    const tls = t.app.get(TlsService).info();
    const config = BundleConfigSchema.strict().parse(JSON.parse(byName.get('kapitan-agent/kapitan.json')!.data.toString()));
    expect(config).toMatchObject({ serverUrl: 'https://localhost:8443', projectId, version: '9.8.7', pins: tls.pins.map((p) => p.spkiSha256) });
    expect(config.pins).toHaveLength(2);
    expect(byName.get('kapitan-agent/ca.pem')!.data.toString()).toBe(tls.caPem);
    const unit = byName.get('kapitan-agent/kapitan-agent.service')!.data.toString();
    for (const line of ['User=kapitan', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'StateDirectory=kapitan-agent', 'RestartPreventExitStatus=3 5', 'ExecReload=/bin/kill -HUP $MAINPID', 'Restart=on-failure']) {
      expect(unit.split('\n')).toContain(line);
    }
    expect(unit).toMatch(/^MemoryMax=\d+M$/m);

    const secret = byName.get('kapitan-agent/enrolment-token')!.data.toString().trim();
    expect(secret).toMatch(new RegExp(`^kpe_${config.enrolmentTokenId}\\.`));
    const list = (await t.http.get(`/api/projects/${projectId}/enrolment-tokens`).set(bearer(alice.token)).expect(200)).body as unknown[];
    const listed = list.map((x) => EnrolmentTokenSchema.strict().parse(x)).find((x) => x.id === config.enrolmentTokenId)!;
    expect(listed).toMatchObject({ purpose: 'bundle', maxUses: 10, uses: 0, revokedAt: null });
    expect(listed.token).toBeUndefined();
    expect(Date.parse(listed.expiresAt!) - Date.now()).toBeGreaterThan(7 * 24 * 3600_000 - 60_000);
    expect(config.enrolmentTokenExpiresAt).toBe(listed.expiresAt);

    await enrol(secret).expect(201);
    const after = (await t.http.get(`/api/projects/${projectId}/enrolment-tokens`).set(bearer(alice.token)).expect(200)).body as { id: string; uses: number }[];
    expect(after.find((x) => x.id === config.enrolmentTokenId)!.uses).toBe(1);
  });

  test('owners only: operator and viewer 403, a stranger 404, no session 401; an API token up to its role', async () => {
    const before = await tokens().count();
    expectError(await getBundle(bob.token), 403, 'forbidden');
    expectError(await getBundle(vera.token), 403, 'forbidden');
    expectError(await getBundle(eve.token), 404, 'not_found');
    expectError(await t.http.get(`/api/projects/${projectId}/bundle`), 401);
    expectError(await t.http.post(`/api/projects/${projectId}/install-links`).set(bearer(bob.token)).send({}), 403, 'forbidden');
    expectError(await t.http.post(`/api/projects/${projectId}/install-links`).set(bearer(eve.token)).send({}), 404, 'not_found');
    expect(await tokens().count()).toBe(before);

    const mint = async (role: string) =>
      CreatedApiTokenSchema.parse((await t.http.post('/api/tokens').set(bearer(alice.token)).send({ name: role, projectId, role }).expect(201)).body).token;
    expectError(await getBundle(await mint('operator')), 403, 'forbidden');
    expect((await getBundle(await mint('owner')).expect(200)).headers['content-type']).toBe('application/zip');
  });

  test('the query: maxUses and ttlHours shape the token; bad values 400 naming the field, and nothing is made', async () => {
    const res = await getBundle(alice.token, '?maxUses=1&ttlHours=2').expect(200);
    const config = BundleConfigSchema.parse(JSON.parse((await readZip(res.body as Buffer)).find((e) => e.name.endsWith('kapitan.json'))!.data.toString()));
    const row = await tokens().findOneByOrFail({ id: config.enrolmentTokenId });
    expect(row).toMatchObject({ maxUses: 1, purpose: 'bundle' });
    expect(Math.abs(row.expiresAt!.getTime() - Date.now() - 2 * 3600_000)).toBeLessThan(60_000);

    const before = await tokens().count();
    for (const [q, field] of [
      ['?maxUses=0', 'maxUses'],
      ['?maxUses=many', 'maxUses'],
      ['?ttlHours=0', 'ttlHours'],
      ['?ttlHours=100000', 'ttlHours'],
    ] as const) {
      expectValidationError(await getBundle(alice.token, q), field);
    }
    expectError(await getBundle(alice.token, '?colour=blue'), 400, 'validation_failed');
    expectValidationError(await t.http.post(`/api/projects/${projectId}/install-links`).set(bearer(alice.token)).send({ ttlMinutes: 1 }), 'ttlMinutes');
    expectError(await t.http.post(`/api/projects/${projectId}/install-links`).set(bearer(alice.token)).send({ extra: 1 }), 400, 'validation_failed');
    expect(await tokens().count()).toBe(before);
  });

  test('a bundle token refused once used up, revoked or expired, like any enrolment token', async () => {
    const secretOf = async (query: string) =>
      (await readZip((await getBundle(alice.token, query).expect(200)).body as Buffer)).find((e) => e.name.endsWith('enrolment-token'))!.data.toString().trim();
    const once = await secretOf('?maxUses=1');
    await enrol(once).expect(201);
    expectError(await enrol(once), 401, 'enrolment_refused');

    const revoked = await secretOf('');
    const id = /^kpe_([0-9a-f-]{36})\./.exec(revoked)![1]!;
    await t.http.delete(`/api/projects/${projectId}/enrolment-tokens/${id}`).set(bearer(bob.token)).expect(204);
    expectError(await enrol(revoked), 401, 'enrolment_refused');

    const expired = await secretOf('');
    await tokens().update({ id: /^kpe_([0-9a-f-]{36})\./.exec(expired)![1]! }, { expiresAt: new Date(Date.now() - 1000) });
    expectError(await enrol(expired), 401, 'enrolment_refused');
  });

  test('a one-line install: the command pins the serving key; its script and agent are served until its one enrolment', async () => {
    const link = InstallLinkSchema.strict().parse((await t.http.post(`/api/projects/${projectId}/install-links`).set(bearer(alice.token)).send({}).expect(201)).body);
    const pin = t.app.get(TlsService).servingSpkiPin()!;
    expect(link.servingSpkiSha256).toBe(pin);
    expect(link.url).toMatch(/^https:\/\/localhost:8443\/api\/install\/kpe_[0-9a-f-]{36}\.[A-Za-z0-9_-]{43}\.sh$/);
    expect(link.command).toBe(`curl -fsSL --insecure --pinnedpubkey 'sha256//${pin}' '${link.url}' | sh`);
    expect(link.token).toMatchObject({ purpose: 'install', maxUses: 1, uses: 0 });
    expect(Math.abs(Date.parse(link.token.expiresAt!) - Date.now() - 3600_000)).toBeLessThan(60_000);
    const secret = tokenOf(link.url);

    const script = await t.http.get(`/api/install/${secret}.sh`).expect(200);
    expect(script.headers['content-type']).toMatch(/^text\/x-shellscript/);
    expect(script.headers['cache-control']).toBe('no-store');
    expect(script.text).toMatch(/^#!\/bin\/sh\n/);
    expect(script.text).toContain(`printf '%s\\n' '${secret}'`);
    expect(script.text).toContain(`sum='${sha(EXE)}'`);
    expect(script.text).toContain(`sum='${sha(CJS)}'`);
    expect(script.text).toContain(`url='https://localhost:8443/api/install/${secret}/agent/exe'`);
    expect(script.text).toMatch(/\nmain "\$@"\n$/);
    const exe = await t.http.get(`/api/install/${secret}/agent/exe`).buffer(true).parse(binary).expect(200);
    expect(exe.body).toEqual(EXE);
    expect((await t.http.get(`/api/install/${secret}/agent/cjs`).buffer(true).parse(binary).expect(200)).body).toEqual(CJS);
    expectError(await t.http.get(`/api/install/${secret}/agent/other`), 404);
    // Serving took no use: the enrolment still works, once.
    await enrol(secret).expect(201);
    expectError(await t.http.get(`/api/install/${secret}.sh`), 404, 'not_found');
    expectError(await t.http.get(`/api/install/${secret}/agent/exe`), 404, 'not_found');
    expectError(await enrol(secret), 401, 'enrolment_refused');
  });

  test('install links refused when revoked, expired, malformed, or made from another kind of token', async () => {
    const make = async () => tokenOf(InstallLinkSchema.parse((await t.http.post(`/api/projects/${projectId}/install-links`).set(bearer(alice.token)).send({ ttlMinutes: 5 }).expect(201)).body).url);
    const idOf = (s: string) => /^kpe_([0-9a-f-]{36})\./.exec(s)![1]!;
    const revoked = await make();
    await t.http.delete(`/api/projects/${projectId}/enrolment-tokens/${idOf(revoked)}`).set(bearer(alice.token)).expect(204);
    expectError(await t.http.get(`/api/install/${revoked}.sh`), 404, 'not_found');
    const expired = await make();
    await tokens().update({ id: idOf(expired) }, { expiresAt: new Date(Date.now() - 1000) });
    expectError(await t.http.get(`/api/install/${expired}.sh`), 404, 'not_found');
    expectError(await t.http.get(`/api/install/${expired}/agent/exe`), 404, 'not_found');
    expectError(await t.http.get('/api/install/not-a-token.sh'), 404, 'not_found');
    expectError(await t.http.get(`/api/install/${await make()}`), 404, 'not_found');
    const manual = (await t.http.post(`/api/projects/${projectId}/enrolment-tokens`).set(bearer(alice.token)).send({}).expect(201)).body.token as string;
    expectError(await t.http.get(`/api/install/${manual}.sh`), 404, 'not_found');
  });
});

describe('install URL redaction in request logs', () => {
  it('replaces the token in the path and drops the params; other URLs pass unchanged', () => {
    expect(redactInstallToken({ url: '/api/install/kpe_abc.def.sh', params: { script: 'kpe_abc.def.sh' } })).toEqual({ url: '/api/install/[redacted]', params: {} });
    expect(redactInstallToken({ url: '/api/install/kpe_abc.def/agent/exe' })).toEqual({ url: '/api/install/[redacted]/agent/exe' });
    expect(redactInstallToken({ url: '/api/projects/x/bundle', params: { projectId: 'x' } })).toEqual({ url: '/api/projects/x/bundle', params: { projectId: 'x' } });
  });
});
