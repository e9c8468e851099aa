/**
 * API tokens against the real app and database: minted by a session, shown
 * once, stored as a hash, acting only in their project and never above their
 * role or their maker's current membership, refused at once when revoked or
 * expired, and unable to manage tokens, members, projects or sessions.
 */
import { API_TOKEN_LIMITS, ApiTokenSchema, CreatedApiTokenSchema, type MachineFacts } from '@kapitan/shared';
import { createHash, randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import {
  bearer,
  createTestApp,
  describeBothDatabases,
  expectError,
  expectValidationError,
  signupUser,
  TestApp,
} from '../testing/test-app';
import { closeSockets, connectLive } from '../testing/sockets';
import { ApiTokenEntity } from './api-token.entity';

type Person = Awaited<ReturnType<typeof signupUser>>;
type Role = 'owner' | 'operator' | 'viewer';

const FACTS: MachineFacts = {
  hostname: 'token-host',
  os: 'Debian',
  platform: 'linux',
  kernel: '6.1',
  arch: 'x64',
  cpus: 2,
  memoryBytes: 1024,
  agentVersion: 'spec',
  dockerAvailable: false,
};

describeBothDatabases('API tokens', (database) => {
  let t: TestApp;
  let alice: Person; // owner of A and B
  let bob: Person; // operator in A
  let vera: Person; // viewer in A
  let projectA: string;
  let projectB: string;

  const rows = () => t.db.getRepository(ApiTokenEntity);
  const count = async (table: string): Promise<number> => Number((await t.db.query(`SELECT COUNT(*) AS n FROM ${table}`))[0].n);
  const run = (token: string, projectId: string) =>
    t.http.post(`/api/projects/${projectId}/executions`).set(bearer(token)).send({ script: 'true', targets: { all: true } });

  async function mint(who: Person, projectId: string, role: Role, extra: Record<string, unknown> = {}) {
    const res = await t.http.post('/api/tokens').set(bearer(who.token)).send({ name: `t ${role}`, projectId, role, ...extra });
    expect(res.status).toBe(201);
    return CreatedApiTokenSchema.parse(res.body);
  }

  beforeAll(async () => {
    t = await createTestApp({ database });
    [alice, bob, vera] = [await signupUser(t.http), await signupUser(t.http), await signupUser(t.http)];
    projectA = (await t.http.post('/api/projects').set(bearer(alice.token)).send({ name: 'A' }).expect(201)).body.id;
    projectB = (await t.http.post('/api/projects').set(bearer(alice.token)).send({ name: 'B' }).expect(201)).body.id;
    for (const [p, role] of [[bob, 'operator'], [vera, 'viewer']] as const) {
      await t.http.post(`/api/projects/${projectA}/members`).set(bearer(alice.token)).send({ email: p.email, role }).expect(201);
    }
    // A machine in each project, so a permitted run has somewhere to go.
    for (const p of [projectA, projectB]) {
      const enrol = (await t.http.post(`/api/projects/${p}/enrolment-tokens`).set(bearer(alice.token)).send({}).expect(201)).body;
      await t.http.post('/api/agent/enrol').send({ token: enrol.token, facts: FACTS }).expect(201);
    }
  });
  afterAll(() => t?.close());
  afterEach(() => closeSockets());

  test('create answers the value once; the list never shows it; the row holds only its sha256', async () => {
    const created = await mint(alice, projectA, 'operator');
    expect(created.token).toMatch(new RegExp(`^kpt_${created.id}\\.[A-Za-z0-9_-]{43}$`));
    expect(created).toMatchObject({ projectId: projectA, projectName: 'A', role: 'operator', lastUsedAt: null, expiresAt: null });

    const list = await t.http.get('/api/tokens').set(bearer(alice.token)).expect(200);
    const mine = list.body.find((x: { id: string }) => x.id === created.id);
    expect(ApiTokenSchema.strict().parse(mine)).toBeTruthy();
    expect(list.text).not.toContain(created.token.split('.')[1]);

    const [row] = await t.db.query('SELECT * FROM api_tokens WHERE id = ?', [created.id]);
    const secret = created.token.split('.')[1];
    expect(row.secretHash).toBe(createHash('sha256').update(secret).digest('hex'));
    expect(JSON.stringify(row)).not.toContain(secret);

    // Only the maker sees it.
    const other = await t.http.get('/api/tokens').set(bearer(bob.token)).expect(200);
    expect(other.body.map((x: { id: string }) => x.id)).not.toContain(created.id);
  });

  test('on its own project a token does what its role allows; on another project it is 404', async () => {
    const viewer = await mint(alice, projectA, 'viewer');
    const operator = await mint(alice, projectA, 'operator');

    await t.http.get(`/api/projects/${projectA}/machines`).set(bearer(viewer.token)).expect(200);
    expectError(await run(viewer.token, projectA), 403, 'forbidden');
    expect((await run(operator.token, projectA)).status).toBe(201);
    // An operator token is not an owner, however much its maker is.
    expectError(await t.http.patch(`/api/projects/${projectA}`).set(bearer(operator.token)).send({ name: 'x' }), 403, 'forbidden');

    // Alice owns B, but the token is A's: B does not exist for it, anywhere.
    const before = await count('executions');
    expectError(await run(operator.token, projectB), 404, 'not_found');
    expectError(await t.http.get(`/api/projects/${projectB}`).set(bearer(operator.token)), 404, 'not_found');
    expectError(await t.http.get(`/api/projects/${projectB}/machines`).set(bearer(operator.token)), 404, 'not_found');
    expect(await count('executions')).toBe(before);

    // The project list shows its one project, at the token's role.
    const projects = await t.http.get('/api/projects').set(bearer(viewer.token)).expect(200);
    expect(projects.body.map((p: { id: string; role: string }) => [p.id, p.role])).toEqual([[projectA, 'viewer']]);
  });

  test('an owner token may manage the project, but never its members', async () => {
    const owner = await mint(alice, projectA, 'owner');
    await t.http.patch(`/api/projects/${projectA}`).set(bearer(owner.token)).send({ description: 'by token' }).expect(200);
    const before = await count('project_members');
    expectError(await t.http.post(`/api/projects/${projectA}/members`).set(bearer(owner.token)).send({ email: 'x@example.com', role: 'owner' }), 403, 'forbidden');
    expectError(await t.http.patch(`/api/projects/${projectA}/members/${vera.user.id}`).set(bearer(owner.token)).send({ role: 'owner' }), 403, 'forbidden');
    expectError(await t.http.delete(`/api/projects/${projectA}/members/${bob.user.id}`).set(bearer(owner.token)), 403, 'forbidden');
    expect(await count('project_members')).toBe(before);
  });

  test('a token cannot mint, list or revoke tokens, create projects, log out or administer', async () => {
    const owner = await mint(alice, projectA, 'owner');
    const tokensBefore = await count('api_tokens');
    const projectsBefore = await count('projects');
    expectError(await t.http.post('/api/tokens').set(bearer(owner.token)).send({ name: 'n', projectId: projectA, role: 'owner' }), 403, 'forbidden');
    expectError(await t.http.get('/api/tokens').set(bearer(owner.token)), 403, 'forbidden');
    expectError(await t.http.delete(`/api/tokens/${owner.id}`).set(bearer(owner.token)), 403, 'forbidden');
    expectError(await t.http.post('/api/projects').set(bearer(owner.token)).send({ name: 'sneaky' }), 403, 'forbidden');
    expectError(await t.http.post('/api/auth/logout').set(bearer(owner.token)), 403, 'forbidden');
    expectError(await t.http.get('/api/admin/settings').set(bearer(owner.token)), 403, 'forbidden');
    expect(await count('api_tokens')).toBe(tokensBefore);
    expect(await count('projects')).toBe(projectsBefore);
    // The session that made it is untouched.
    await t.http.get('/api/tokens').set(bearer(alice.token)).expect(200);
  });

  test('minting needs membership with at least the role asked for', async () => {
    const before = await count('api_tokens');
    const post = (who: Person, projectId: string, role: Role) =>
      t.http.post('/api/tokens').set(bearer(who.token)).send({ name: 'n', projectId, role });
    expectError(await post(vera, projectA, 'operator'), 403, 'forbidden');
    expectError(await post(bob, projectA, 'owner'), 403, 'forbidden');
    expectError(await post(bob, projectB, 'viewer'), 404, 'not_found');
    expectError(await post(alice, randomUUID(), 'viewer'), 404, 'not_found');
    expect(await count('api_tokens')).toBe(before);
    expect((await post(vera, projectA, 'viewer')).status).toBe(201);
  });

  test('revoked → 401 on the very next request; revoking twice or someone else’s → 404', async () => {
    const tok = await mint(bob, projectA, 'operator');
    await t.http.get(`/api/projects/${projectA}`).set(bearer(tok.token)).expect(200);
    expectError(await t.http.delete(`/api/tokens/${tok.id}`).set(bearer(alice.token)), 404, 'not_found');
    await t.http.delete(`/api/tokens/${tok.id}`).set(bearer(bob.token)).expect(204);
    expectError(await t.http.get(`/api/projects/${projectA}`).set(bearer(tok.token)), 401, 'unauthenticated');
    expectError(await t.http.delete(`/api/tokens/${tok.id}`).set(bearer(bob.token)), 404, 'not_found');
    expectError(await t.http.delete('/api/tokens/not-an-id').set(bearer(bob.token)), 404, 'not_found');
  });

  test('expired → 401', async () => {
    const tok = await mint(bob, projectA, 'viewer', { expiresAt: new Date(Date.now() + 3600_000).toISOString() });
    await t.http.get(`/api/projects/${projectA}`).set(bearer(tok.token)).expect(200);
    // Move its expiry into the past rather than wait for it.
    await rows().update({ id: tok.id }, { expiresAt: new Date(Date.now() - 1000) });
    expectError(await t.http.get(`/api/projects/${projectA}`).set(bearer(tok.token)), 401, 'unauthenticated');
  });

  test('the maker demoted → the token drops to the new role; removed → the project is 404 for it', async () => {
    const carol = await signupUser(t.http);
    await t.http.post(`/api/projects/${projectA}/members`).set(bearer(alice.token)).send({ email: carol.email, role: 'operator' }).expect(201);
    const tok = await mint(carol, projectA, 'operator');
    expect((await run(tok.token, projectA)).status).toBe(201);

    await t.http.patch(`/api/projects/${projectA}/members/${carol.user.id}`).set(bearer(alice.token)).send({ role: 'viewer' }).expect(200);
    expectError(await run(tok.token, projectA), 403, 'forbidden');
    const projects = await t.http.get('/api/projects').set(bearer(tok.token)).expect(200);
    expect(projects.body.map((p: { role: string }) => p.role)).toEqual(['viewer']);

    await t.http.delete(`/api/projects/${projectA}/members/${carol.user.id}`).set(bearer(alice.token)).expect(204);
    expectError(await t.http.get(`/api/projects/${projectA}`).set(bearer(tok.token)), 404, 'not_found');
    expectError(await run(tok.token, projectA), 404, 'not_found');
    expect((await t.http.get('/api/projects').set(bearer(tok.token)).expect(200)).body).toEqual([]);
    // Its list entry remains (revocable) but no longer names a project the maker cannot see.
    const list = await t.http.get('/api/tokens').set(bearer(carol.token)).expect(200);
    expect(list.body.find((x: { id: string }) => x.id === tok.id).projectName).toBeNull();
  });

  test('last used is recorded, at most once a minute', async () => {
    const tok = await mint(bob, projectA, 'viewer');
    await t.http.get(`/api/projects/${projectA}`).set(bearer(tok.token)).expect(200);
    const lastUsed = async () => (await rows().findOneByOrFail({ id: tok.id })).lastUsedAt;
    const first = await lastUsed();
    expect(first).not.toBeNull();
    const listed = (await t.http.get('/api/tokens').set(bearer(bob.token))).body.find((x: { id: string }) => x.id === tok.id);
    expect(Date.parse(listed.lastUsedAt)).toBe(first!.getTime());

    // A second use within the minute writes nothing.
    await t.http.get(`/api/projects/${projectA}`).set(bearer(tok.token)).expect(200);
    expect((await lastUsed())!.getTime()).toBe(first!.getTime());

    // Once the stamp is over a minute old, the next use moves it.
    const old = new Date(Date.now() - 120_000);
    await rows().update({ id: tok.id }, { lastUsedAt: old });
    await t.http.get(`/api/projects/${projectA}`).set(bearer(tok.token)).expect(200);
    expect((await lastUsed())!.getTime()).toBeGreaterThan(old.getTime() + 60_000);
  });

  test('malformed tokens → 401 with the usual error shape', async () => {
    const tok = await mint(bob, projectA, 'viewer');
    const [head, secret] = tok.token.split('.');
    const wrongSecret = `${head}.${secret.slice(0, -1)}${secret.endsWith('A') ? 'B' : 'A'}`;
    for (const value of [
      'kpt_',
      `kpt_${tok.id}`,
      `kpt_${tok.id}.`,
      tok.token.slice(0, -1), // truncated
      `${tok.token}x`,
      wrongSecret,
      `kpt_${randomUUID()}.${secret}`, // unknown id, real secret
      `kpx_${tok.id}.${secret}`, // wrong prefix: not a token, not a JWT
      `kpm_${tok.id}.${secret}`, // a machine credential's prefix
      `${tok.token}%00`,
      `KPT_${tok.id}.${secret}`,
    ]) {
      expectError(await t.http.get(`/api/projects/${projectA}`).set('Authorization', `Bearer ${value}`), 401, 'unauthenticated');
    }
    // The real one still works after all that.
    await t.http.get(`/api/projects/${projectA}`).set(bearer(tok.token)).expect(200);
  });

  test('a raw NUL inside the header is refused before the app; the server stays up', async () => {
    const tok = await mint(bob, projectA, 'viewer');
    const { port } = new URL(t.url);
    const answer = await new Promise<string>((resolve, reject) => {
      const s = connect(Number(port), '127.0.0.1');
      let data = '';
      s.setTimeout(5_000, () => reject(new Error('no answer to the NUL header')));
      s.on('data', (d) => (data += d.toString('latin1')));
      s.on('end', () => resolve(data));
      s.on('close', () => resolve(data));
      s.on('error', reject);
      s.write(`GET /api/projects/${projectA} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tok.token.slice(0, 20)}\0${tok.token.slice(20)}\r\n\r\n`);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 4\d\d/);
    expect(answer).not.toMatch(/^HTTP\/1\.1 2\d\d/);
    await t.http.get(`/api/projects/${projectA}`).set(bearer(tok.token)).expect(200);
  });

  test('the /live handshake takes sessions only: an API token is refused', async () => {
    const tok = await mint(alice, projectA, 'owner');
    await expect(connectLive(t.url, tok.token)).rejects.toThrow();
    // The maker's session still connects, so the refusal is about the token.
    const ok = await connectLive(t.url, alice.token);
    expect(ok.connected).toBe(true);
  });

  test('bad bodies → 400 naming the field, nothing created', async () => {
    const before = await count('api_tokens');
    const post = (body: unknown) => t.http.post('/api/tokens').set(bearer(alice.token)).send(body as object);
    const ok = { name: 'ci', projectId: projectA, role: 'viewer' };
    expectValidationError(await post({ ...ok, name: '' }), 'name');
    expectValidationError(await post({ ...ok, name: '   ' }), 'name');
    expectValidationError(await post({ ...ok, name: 'x'.repeat(101) }), 'name');
    expectValidationError(await post({ ...ok, name: 'a\0b' }), 'name');
    expectValidationError(await post({ ...ok, name: 7 }), 'name');
    expectValidationError(await post({ projectId: projectA, role: 'viewer' }), 'name');
    expectValidationError(await post({ ...ok, role: 'admin' }), 'role');
    expectValidationError(await post({ ...ok, projectId: 'nope' }), 'projectId');
    expectValidationError(await post({ ...ok, expiresAt: new Date(Date.now() - 60_000).toISOString() }), 'expiresAt');
    expectValidationError(await post({ ...ok, expiresAt: 'tomorrow' }), 'expiresAt');
    expectValidationError(await post({ ...ok, userId: bob.user.id }), 'userId');
    expectError(await t.http.post('/api/tokens').set(bearer(alice.token)).set('content-type', 'application/json').send('{"name":'), 400);
    expect(await count('api_tokens')).toBe(before);
  });

  test(`one user holds at most ${API_TOKEN_LIMITS.perUserMax} tokens`, async () => {
    const dave = await signupUser(t.http);
    const p = (await t.http.post('/api/projects').set(bearer(dave.token)).send({ name: 'D' }).expect(201)).body.id;
    const now = new Date();
    // Fill up to the limit directly: the rule under test is the refusal at the limit, not 100 round trips.
    await rows().insert(
      Array.from({ length: API_TOKEN_LIMITS.perUserMax }, (_, i) => ({
        id: randomUUID(),
        userId: dave.user.id,
        projectId: p,
        name: `t${i}`,
        role: 'viewer' as const,
        secretHash: '0'.repeat(64),
        createdAt: now,
        lastUsedAt: null,
        expiresAt: null,
      })),
    );
    expectError(await t.http.post('/api/tokens').set(bearer(dave.token)).send({ name: 'one more', projectId: p, role: 'viewer' }), 409, 'conflict');
    expect(await rows().countBy({ userId: dave.user.id })).toBe(API_TOKEN_LIMITS.perUserMax);
  });

  test('deleting the maker deletes their tokens (401), by the foreign key', async () => {
    const erin = await signupUser(t.http);
    const p = (await t.http.post('/api/projects').set(bearer(erin.token)).send({ name: 'E' }).expect(201)).body.id;
    const tok = await mint(erin, p, 'owner');
    await t.http.get(`/api/projects/${p}`).set(bearer(tok.token)).expect(200);
    await t.db.query('DELETE FROM users WHERE id = ?', [erin.user.id]);
    expectError(await t.http.get(`/api/projects/${p}`).set(bearer(tok.token)), 401, 'unauthenticated');
  });
});
