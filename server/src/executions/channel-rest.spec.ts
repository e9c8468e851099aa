/**
 * The agent channel's REST surface on both databases: enrolment tokens,
 * machines and executions. Bad input names the field and creates nothing;
 * another project's resources are 404; a viewer cannot act (threat model T8, T12).
 */
import { LIMITS, type MachineFacts } from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import { bearer, createTestApp, describeBothDatabases, expectError, expectValidationError, signupUser, TestApp } from '../testing/test-app';

const FACTS: MachineFacts = {
  hostname: 'spec-host',
  os: 'Debian',
  platform: 'linux',
  kernel: '6.1',
  arch: 'x64',
  cpus: 2,
  memoryBytes: 1024,
  agentVersion: 'spec',
  dockerAvailable: false,
};

describeBothDatabases('agent channel REST', (database) => {
  let t: TestApp;
  let owner: string;
  let stranger: string;
  let viewer: string;
  let projectId: string;
  let machineId: string;
  let executionId: string;

  const count = async (table: string): Promise<number> => Number((await t.db.query(`SELECT COUNT(*) AS n FROM ${table}`))[0].n);

  beforeAll(async () => {
    t = await createTestApp({ database });
    owner = (await signupUser(t.http)).token;
    stranger = (await signupUser(t.http)).token;
    const v = await signupUser(t.http);
    viewer = v.token;
    projectId = (await t.http.post('/api/projects').set(bearer(owner)).send({ name: 'p' })).body.id;
    await t.http.post(`/api/projects/${projectId}/members`).set(bearer(owner)).send({ email: v.email, role: 'viewer' }).expect(201);
    const token = (await t.http.post(`/api/projects/${projectId}/enrolment-tokens`).set(bearer(owner)).send({ labels: { env: 'prod' }, allowAgentLabels: true }).expect(201)).body;
    machineId = (await t.http.post('/api/agent/enrol').send({ token: token.token, facts: FACTS, labels: { role: 'web' } }).expect(201)).body.machineId;
    executionId = (await t.http.post(`/api/projects/${projectId}/executions`).set(bearer(owner)).send({ script: 'true', targets: { all: true } }).expect(201)).body.executions[0].id;
  });
  afterAll(() => t?.close());

  test('enrolment tokens are shown once and stored as a hash', async () => {
    const created = await t.http.post(`/api/projects/${projectId}/enrolment-tokens`).set(bearer(owner)).send({ maxUses: 2 }).expect(201);
    expect(created.body.token).toMatch(/^kpe_/);
    const list = await t.http.get(`/api/projects/${projectId}/enrolment-tokens`).set(bearer(owner)).expect(200);
    expect(JSON.stringify(list.body)).not.toContain(created.body.token);
    const rows: { secretHash: string }[] = await t.db.query('SELECT secretHash FROM enrolment_tokens');
    for (const r of rows) expect(created.body.token).not.toContain(r.secretHash);
    const secret = created.body.token.split('.')[1];
    expect(JSON.stringify(rows)).not.toContain(secret);
  });

  test('a machine joins with the labels of its token and of its enrolment; its credential is stored as a hash', async () => {
    const m = await t.http.get(`/api/projects/${projectId}/machines/${machineId}`).set(bearer(viewer)).expect(200);
    expect(m.body).toMatchObject({ id: machineId, hostname: 'spec-host', status: 'offline', labels: { env: 'prod', role: 'web' } });
    expect(m.body).not.toHaveProperty('credentialHash');
  });

  test("an enrolling agent's labels cannot contradict its token's: the token's win", async () => {
    const token = (await t.http.post(`/api/projects/${projectId}/enrolment-tokens`).set(bearer(owner)).send({ labels: { env: 'prod' }, allowAgentLabels: true }).expect(201)).body;
    expect(token.allowAgentLabels).toBe(true);
    const enrolled = await t.http.post('/api/agent/enrol').send({ token: token.token, facts: FACTS, labels: { env: 'dev', role: 'db' } }).expect(201);
    const m = await t.http.get(`/api/projects/${projectId}/machines/${enrolled.body.machineId}`).set(bearer(owner)).expect(200);
    expect(m.body.labels).toEqual({ env: 'prod', role: 'db' });
  });

  test("by default (allowAgentLabels false) the token's labels are the machine's: the agent's own are not added", async () => {
    const created = await t.http.post(`/api/projects/${projectId}/enrolment-tokens`).set(bearer(owner)).send({ labels: { env: 'prod' } }).expect(201);
    expect(created.body.allowAgentLabels).toBe(false);
    const listed = await t.http.get(`/api/projects/${projectId}/enrolment-tokens`).set(bearer(owner)).expect(200);
    expect(listed.body.find((x: { id: string }) => x.id === created.body.id)).toMatchObject({ allowAgentLabels: false, labels: { env: 'prod' } });
    const enrolled = await t.http.post('/api/agent/enrol').send({ token: created.body.token, facts: FACTS, labels: { env: 'dev', role: 'db' } }).expect(201);
    const m = await t.http.get(`/api/projects/${projectId}/machines/${enrolled.body.machineId}`).set(bearer(owner)).expect(200);
    expect(m.body.labels).toEqual({ env: 'prod' });
    const off = (await t.http.post(`/api/projects/${projectId}/enrolment-tokens`).set(bearer(owner)).send({ allowAgentLabels: false }).expect(201)).body;
    const bare = await t.http.post('/api/agent/enrol').send({ token: off.token, facts: FACTS, labels: { role: 'db' } }).expect(201);
    expect((await t.http.get(`/api/projects/${projectId}/machines/${bare.body.machineId}`).set(bearer(owner)).expect(200)).body.labels).toEqual({});
  });

  test('bad enrolment-token bodies → 400 naming the field, nothing created', async () => {
    const before = await count('enrolment_tokens');
    const post = (body: unknown) => t.http.post(`/api/projects/${projectId}/enrolment-tokens`).set(bearer(owner)).send(body as object);
    expectValidationError(await post({ maxUses: 0 }), 'maxUses');
    expectValidationError(await post({ maxUses: 'ten' }), 'maxUses');
    expectValidationError(await post({ allowAgentLabels: 'yes' }), 'allowAgentLabels');
    expectValidationError(await post({ maxUses: LIMITS.enrolmentMaxUses + 1 }), 'maxUses');
    expectValidationError(await post({ expiresAt: 'tomorrow' }), 'expiresAt');
    expectValidationError(await post({ expiresAt: new Date(Date.now() - 1000).toISOString() }), 'expiresAt');
    expectValidationError(await post({ labels: { 'bad key!': 'x' } }), 'labels.bad key!');
    expectValidationError(await post({ projectId: randomUUID() }), 'projectId');
    expect(await count('enrolment_tokens')).toBe(before);
  });

  test('bad execution bodies → 400 naming the field, nothing created', async () => {
    const before = await count('executions');
    const post = (body: unknown) => t.http.post(`/api/projects/${projectId}/executions`).set(bearer(owner)).send(body as object);
    const ok = { script: 'true', targets: { all: true } };
    expectValidationError(await post({ targets: { all: true } }), 'script');
    expectValidationError(await post({ script: 'true' }), 'targets');
    expectValidationError(await post({ ...ok, script: '' }), 'script');
    expectValidationError(await post({ ...ok, script: 'x'.repeat(LIMITS.scriptMaxBytes + 1) }), 'script');
    expectValidationError(await post({ ...ok, args: 'a b' }), 'args');
    expectValidationError(await post({ ...ok, args: Array(LIMITS.argsMax + 1).fill('a') }), 'args');
    expectValidationError(await post({ ...ok, args: ['x'.repeat(LIMITS.argMax + 1)] }), 'args.0');
    expectValidationError(await post({ ...ok, env: { 'BAD-NAME': 'x' } }), 'env.BAD-NAME');
    expectValidationError(await post({ ...ok, env: { A: 1 } }), 'env.A');
    expectValidationError(await post({ ...ok, cwd: 'relative/path' }), 'cwd');
    expectValidationError(await post({ ...ok, timeoutSeconds: 0 }), 'timeoutSeconds');
    expectValidationError(await post({ ...ok, timeoutSeconds: 1.5 }), 'timeoutSeconds');
    expectValidationError(await post({ ...ok, targets: {} }), 'targets');
    expectValidationError(await post({ ...ok, targets: { machineIds: [] } }), 'targets.machineIds');
    expectValidationError(await post({ ...ok, targets: { machineIds: ['not-a-uuid'] } }), 'targets.machineIds.0');
    expectValidationError(await post({ ...ok, targets: { all: false } }), 'targets.all');
    expectValidationError(await post({ ...ok, fileId: randomUUID() }), 'fileId');
    expectValidationError(await post({ ...ok, shell: true }), 'shell');
    const malformed = await t.http.post(`/api/projects/${projectId}/executions`).set(bearer(owner)).set('content-type', 'application/json').send('{"script":');
    expectError(malformed, 400, 'malformed_body');
    expectValidationError(await post({ ...ok, targets: { labels: { nope: 'x' } } }), 'targets');
    expectError(await post({ ...ok, targets: { machineIds: [randomUUID()] } }), 404, 'not_found');
    expect(await count('executions')).toBe(before);
  });

  test('bad log and list queries → 400 naming the parameter', async () => {
    expectValidationError(await t.http.get(`/api/executions/${executionId}/log?fromSeq=-1`).set(bearer(owner)), 'fromSeq');
    expectValidationError(await t.http.get(`/api/executions/${executionId}/log?limit=${LIMITS.logPageMax + 1}`).set(bearer(owner)), 'limit');
    expectValidationError(await t.http.get(`/api/executions/${executionId}/log?format=xml`).set(bearer(owner)), 'format');
    expectValidationError(await t.http.get(`/api/projects/${projectId}/executions?status=exploded`).set(bearer(owner)), 'status');
    expectValidationError(await t.http.get(`/api/projects/${projectId}/executions?machineId=x`).set(bearer(owner)), 'machineId');
  });

  test("another project's resources answer 404 on every route, and nothing changes", async () => {
    const before = { tokens: await count('enrolment_tokens'), executions: await count('executions'), machines: await count('machines') };
    const s = bearer(stranger);
    const tokenId = (await t.http.get(`/api/projects/${projectId}/enrolment-tokens`).set(bearer(owner))).body[0].id;
    const calls = [
      t.http.get(`/api/projects/${projectId}/enrolment-tokens`).set(s),
      t.http.post(`/api/projects/${projectId}/enrolment-tokens`).set(s).send({}),
      t.http.delete(`/api/projects/${projectId}/enrolment-tokens/${tokenId}`).set(s),
      t.http.get(`/api/projects/${projectId}/machines`).set(s),
      t.http.get(`/api/projects/${projectId}/machines/${machineId}`).set(s),
      t.http.patch(`/api/projects/${projectId}/machines/${machineId}`).set(s).send({ labels: {} }),
      t.http.delete(`/api/projects/${projectId}/machines/${machineId}`).set(s),
      t.http.get(`/api/projects/${projectId}/executions`).set(s),
      t.http.post(`/api/projects/${projectId}/executions`).set(s).send({ script: 'true', targets: { all: true } }),
      t.http.get(`/api/executions/${executionId}`).set(s),
      t.http.get(`/api/executions/${executionId}/log`).set(s),
      t.http.get(`/api/executions/${executionId}/log`).set(s).set('accept', 'text/plain'),
      t.http.post(`/api/executions/${executionId}/cancel`).set(s),
    ];
    const missing = await Promise.all(calls);
    const messages = new Set<string>();
    for (const res of missing) messages.add(expectError(res, 404, 'not_found').message);
    // The same answers as for ids that do not exist at all.
    const unknown = await t.http.get(`/api/executions/${randomUUID()}`).set(s);
    expect(messages).toContain(expectError(unknown, 404, 'not_found').message);
    expect({ tokens: await count('enrolment_tokens'), executions: await count('executions'), machines: await count('machines') }).toEqual(before);
    const m = await t.http.get(`/api/projects/${projectId}/machines/${machineId}`).set(bearer(owner)).expect(200);
    expect(m.body.labels).toEqual({ env: 'prod', role: 'web' });
  });

  test('a viewer reads but cannot run, cancel, enrol or revoke (403), and nothing changes', async () => {
    const v = bearer(viewer);
    await t.http.get(`/api/projects/${projectId}/machines`).set(v).expect(200);
    await t.http.get(`/api/executions/${executionId}/log`).set(v).expect(200);
    const before = { tokens: await count('enrolment_tokens'), executions: await count('executions') };
    expectError(await t.http.post(`/api/projects/${projectId}/executions`).set(v).send({ script: 'true', targets: { all: true } }), 403, 'forbidden');
    expectError(await t.http.post(`/api/executions/${executionId}/cancel`).set(v), 403, 'forbidden');
    expectError(await t.http.post(`/api/projects/${projectId}/enrolment-tokens`).set(v).send({}), 403, 'forbidden');
    expectError(await t.http.get(`/api/projects/${projectId}/enrolment-tokens`).set(v), 403, 'forbidden');
    expectError(await t.http.patch(`/api/projects/${projectId}/machines/${machineId}`).set(v).send({ labels: {} }), 403, 'forbidden');
    expectError(await t.http.delete(`/api/projects/${projectId}/machines/${machineId}`).set(v), 403, 'forbidden');
    expect({ tokens: await count('enrolment_tokens'), executions: await count('executions') }).toEqual(before);
    expect((await t.http.get(`/api/executions/${executionId}`).set(v)).body.status).toBe('queued');
  });

  test('cancel of queued work ends it at once; a second cancel is a conflict', async () => {
    const id = (await t.http.post(`/api/projects/${projectId}/executions`).set(bearer(owner)).send({ script: 'sleep 1', targets: { machineIds: [machineId] } }).expect(201)).body.executions[0].id;
    const res = await t.http.post(`/api/executions/${id}/cancel`).set(bearer(owner)).expect(202);
    expect(res.body).toMatchObject({ id, status: 'cancelled', reason: 'cancelled before it started' });
    expectError(await t.http.post(`/api/executions/${id}/cancel`).set(bearer(owner)), 409, 'conflict');
  });

  test('no token → 401 on every channel route; the enrol route alone is public', async () => {
    for (const res of await Promise.all([
      t.http.get(`/api/projects/${projectId}/machines`),
      t.http.get(`/api/executions/${executionId}`),
      t.http.post(`/api/projects/${projectId}/executions`).send({ script: 'true', targets: { all: true } }),
    ])) {
      expectError(res, 401, 'unauthenticated');
    }
    expectError(await t.http.post('/api/agent/enrol').send({ token: 'kpe_x', facts: FACTS }), 401, 'enrolment_refused');
  });
});
