import { AddMemberResponseSchema, InvitationSchema } from '@kapitan/shared';
import { InvitationEntity } from './invitation.entity';
import { bearer, createTestApp, describeBothDatabases, expectError, expectValidationError, signupUser, TEST_PASSWORD, TestApp, uniqueEmail } from '../testing/test-app';

/**
 * Sign-up under the admin's control, on both databases: exactly one first
 * admin however many race; after that sign-up is by invitation unless an
 * admin (or KAPITAN_SIGNUP) opens it; an invitation works once, never after
 * it expired or was revoked; refused sign-ups are throttled per address;
 * and adding a project member by e-mail answers alike whether or not the
 * e-mail has an account.
 */
let addressCounter = 0;
const freshAddress = () => {
  const n = addressCounter++;
  return `198.19.${Math.floor(n / 250)}.${(n % 250) + 1}`;
};

describeBothDatabases('sign-up controls', (database) => {
  const count = async (t: TestApp, sql: string): Promise<number> => Number((await t.db.query(sql))[0].n);
  const signup = (t: TestApp, body: object, address = freshAddress()) => t.http.post('/api/auth/signup').set('X-Forwarded-For', address).send(body);

  describe('a fresh instance', () => {
    it('default mode: 20 simultaneous sign-ups → exactly one account, the admin; the others refused (403)', async () => {
      const t = await createTestApp({ database, env: { KAPITAN_SIGNUP: undefined } });
      try {
        expect((await t.http.get('/api/auth/signup-mode')).body).toEqual({ mode: 'open' });
        const results = await Promise.all(Array.from({ length: 20 }, () => signup(t, { email: uniqueEmail('race'), password: TEST_PASSWORD })));
        const created = results.filter((r) => r.status === 201);
        expect(created).toHaveLength(1);
        expect(created[0].body.user.isAdmin).toBe(true);
        for (const r of results.filter((x) => x.status !== 201)) expectError(r, 403, 'forbidden');
        expect(await count(t, 'SELECT COUNT(*) AS n FROM users')).toBe(1);
        expect(await count(t, 'SELECT COUNT(*) AS n FROM users WHERE isAdmin = 1')).toBe(1);
        // From now on: by invitation.
        expect((await t.http.get('/api/auth/signup-mode')).body).toEqual({ mode: 'invite' });
        expectError(await signup(t, { email: uniqueEmail('late'), password: TEST_PASSWORD }), 403, 'forbidden');
        expect(await count(t, 'SELECT COUNT(*) AS n FROM users')).toBe(1);
      } finally {
        await t.close();
      }
    });

    it('KAPITAN_SIGNUP=open: 20 simultaneous sign-ups → 20 accounts, exactly one admin', async () => {
      const t = await createTestApp({ database, env: { KAPITAN_SIGNUP: 'open' } });
      try {
        const results = await Promise.all(Array.from({ length: 20 }, () => signup(t, { email: uniqueEmail('race'), password: TEST_PASSWORD })));
        expect(results.map((r) => r.status)).toEqual(Array(20).fill(201));
        expect(results.filter((r) => r.body.user.isAdmin)).toHaveLength(1);
        expect(await count(t, 'SELECT COUNT(*) AS n FROM users WHERE isAdmin = 1')).toBe(1);
      } finally {
        await t.close();
      }
    });

    it('KAPITAN_SIGNUP=invite still lets the very first account in (there is no admin to invite it), and no one after', async () => {
      const t = await createTestApp({ database, env: { KAPITAN_SIGNUP: 'invite' } });
      try {
        expect((await signup(t, { email: uniqueEmail('first'), password: TEST_PASSWORD })).body.user.isAdmin).toBe(true);
        expectError(await signup(t, { email: uniqueEmail('second'), password: TEST_PASSWORD }), 403, 'forbidden');
      } finally {
        await t.close();
      }
    });
  });

  it('an install upgraded with accounts already has its first admin: the next sign-up is no admin, and closed by default', async () => {
    const t = await createTestApp({ database, env: { KAPITAN_SIGNUP: undefined } });
    try {
      // Back to the schema before sign-up controls, with one account made there (as an older release did).
      const applied = async () => ((await t.db.query('SELECT name FROM migrations')) as { name: string }[]).map((r) => r.name);
      while ((await applied()).includes('SignupControls1764590400000')) await t.db.undoLastMigration({ transaction: 'each' });
      const now = new Date();
      await t.db.createQueryBuilder().insert().into('users').values({ id: '11111111-1111-4111-8111-111111111111', email: 'old-admin@example.test', name: null, passwordHash: 'x', isAdmin: true, createdAt: now, updatedAt: now }).execute();
      await t.db.runMigrations({ transaction: 'each' });
      expectError(await signup(t, { email: uniqueEmail('after-upgrade'), password: TEST_PASSWORD }), 403, 'forbidden');
      await t.db.createQueryBuilder().insert().into('instance_settings').values({ name: 'signup_mode', value: 'open', updatedAt: now }).execute();
      const res = await signup(t, { email: uniqueEmail('after-upgrade'), password: TEST_PASSWORD });
      expect(res.status).toBe(201);
      expect(res.body.user.isAdmin).toBe(false);
    } finally {
      await t.close();
    }
  });

  describe('invitations and settings', () => {
    let t: TestApp;
    let admin: Awaited<ReturnType<typeof signupUser>>;
    let member: Awaited<ReturnType<typeof signupUser>>;
    beforeAll(async () => {
      t = await createTestApp({ database, env: { KAPITAN_SIGNUP: undefined } });
      admin = await signupUser(t.http);
      expect(admin.user.isAdmin).toBe(true);
      const inv = await t.http.post('/api/admin/invitations').set(bearer(admin.token)).send({}).expect(201);
      member = await (async () => {
        const email = uniqueEmail('member');
        const res = await signup(t, { email, password: TEST_PASSWORD, invitation: inv.body.token });
        expect(res.status).toBe(201);
        return { user: res.body.user, token: res.body.accessToken, email, password: TEST_PASSWORD };
      })();
    });
    afterAll(() => t?.close());

    const invite = async (body: object = {}) => {
      const res = await t.http.post('/api/admin/invitations').set(bearer(admin.token)).send(body);
      expect(res.status).toBe(201);
      return InvitationSchema.strict().parse(res.body);
    };

    it('an invitation is shown once, stored as a hash, and its link carries the token', async () => {
      const inv = await invite({ expiresInHours: 2 });
      expect(inv.token).toMatch(/^kpi_[A-Za-z0-9_-]{43}$/);
      expect(inv.url).toBe(`/signup?invite=${inv.token}`);
      expect(inv.status).toBe('pending');
      expect(Date.parse(inv.expiresAt) - Date.parse(inv.createdAt)).toBe(2 * 3600_000);
      const list = await t.http.get('/api/admin/invitations').set(bearer(admin.token)).expect(200);
      expect(JSON.stringify(list.body)).not.toContain(inv.token);
      expect(JSON.stringify(await t.db.query('SELECT * FROM invitations'))).not.toContain(inv.token!.slice(4));
    });

    it('an invitation works once, then never again (also when two use it at the same moment)', async () => {
      const inv = await invite();
      const results = await Promise.all([0, 1, 2].map(() => signup(t, { email: uniqueEmail('invited'), password: TEST_PASSWORD, invitation: inv.token })));
      expect(results.map((r) => r.status).sort()).toEqual([201, 403, 403]);
      const winner = results.find((r) => r.status === 201)!;
      expect(winner.body.user.isAdmin).toBe(false);
      for (const r of results.filter((x) => x.status === 403)) expectError(r, 403, 'forbidden');
      const before = await count(t, 'SELECT COUNT(*) AS n FROM users');
      expectError(await signup(t, { email: uniqueEmail('again'), password: TEST_PASSWORD, invitation: inv.token }), 403, 'forbidden');
      expect(await count(t, 'SELECT COUNT(*) AS n FROM users')).toBe(before);
      const listed = (await t.http.get('/api/admin/invitations').set(bearer(admin.token))).body.find((i: { id: string }) => i.id === inv.id);
      expect(listed).toMatchObject({ status: 'used', usedAt: expect.any(String) });
    });

    it('a sign-up that fails (address taken) does not use the invitation up', async () => {
      const inv = await invite();
      expectError(await signup(t, { email: member.email, password: TEST_PASSWORD, invitation: inv.token }), 409, 'conflict');
      expect((await signup(t, { email: uniqueEmail('second-try'), password: TEST_PASSWORD, invitation: inv.token })).status).toBe(201);
    });

    it('an expired, a revoked, an unknown or a malformed invitation → 403 (the same answer), nothing created', async () => {
      const expired = await invite();
      await t.db.getRepository(InvitationEntity).update({ id: expired.id }, { expiresAt: new Date(Date.now() - 1000) });
      const revoked = await invite();
      expect((await t.http.delete(`/api/admin/invitations/${revoked.id}`).set(bearer(admin.token))).status).toBe(204);
      const before = await count(t, 'SELECT COUNT(*) AS n FROM users');
      const messages = new Set<string>();
      for (const token of [expired.token, revoked.token, `kpi_${'A'.repeat(43)}`, 'nonsense']) {
        messages.add(expectError(await signup(t, { email: uniqueEmail('refused'), password: TEST_PASSWORD, invitation: token }), 403, 'forbidden').message);
      }
      expect(messages.size).toBe(1);
      expect(await count(t, 'SELECT COUNT(*) AS n FROM users')).toBe(before);
      const list = (await t.http.get('/api/admin/invitations').set(bearer(admin.token))).body as { id: string; status: string }[];
      expect(list.find((i) => i.id === expired.id)?.status).toBe('expired');
      expect(list.find((i) => i.id === revoked.id)?.status).toBe('revoked');
    });

    it('only the admin manages invitations and settings (403); bad input → 400 naming the field; nothing changed', async () => {
      const before = await count(t, 'SELECT COUNT(*) AS n FROM invitations');
      expectError(await t.http.post('/api/admin/invitations').set(bearer(member.token)).send({}), 403, 'forbidden');
      expectError(await t.http.get('/api/admin/invitations').set(bearer(member.token)), 403, 'forbidden');
      expectError(await t.http.get('/api/admin/settings').set(bearer(member.token)), 403, 'forbidden');
      expectError(await t.http.patch('/api/admin/settings').set(bearer(member.token)).send({ signupMode: 'open' }), 403, 'forbidden');
      expectError(await t.http.get('/api/admin/invitations'), 401, 'unauthenticated');
      expectValidationError(await t.http.post('/api/admin/invitations').set(bearer(admin.token)).send({ expiresInHours: 0 }), 'expiresInHours');
      expectValidationError(await t.http.post('/api/admin/invitations').set(bearer(admin.token)).send({ expiresInHours: 10_000 }), 'expiresInHours');
      expectValidationError(await t.http.post('/api/admin/invitations').set(bearer(admin.token)).send({ role: 'x' }), 'role');
      expectValidationError(await t.http.patch('/api/admin/settings').set(bearer(admin.token)).send({ signupMode: 'everyone' }), 'signupMode');
      expectError(await t.http.delete(`/api/admin/invitations/00000000-0000-4000-8000-000000000000`).set(bearer(admin.token)), 404, 'not_found');
      expectValidationError(await signup(t, { email: uniqueEmail('x'), password: TEST_PASSWORD, invitation: '' }), 'invitation');
      expect(await count(t, 'SELECT COUNT(*) AS n FROM invitations')).toBe(before);
      expect((await t.http.get('/api/admin/settings').set(bearer(admin.token))).body).toEqual({ signupMode: 'invite', signupModeSource: 'default' });
    });

    it('the admin opens sign-up, and closes it again', async () => {
      const opened = await t.http.patch('/api/admin/settings').set(bearer(admin.token)).send({ signupMode: 'open' });
      expect(opened.body).toEqual({ signupMode: 'open', signupModeSource: 'setting' });
      expect((await signup(t, { email: uniqueEmail('open'), password: TEST_PASSWORD })).status).toBe(201);
      await t.http.patch('/api/admin/settings').set(bearer(admin.token)).send({ signupMode: 'invite' }).expect(200);
      expectError(await signup(t, { email: uniqueEmail('closed'), password: TEST_PASSWORD }), 403, 'forbidden');
    });
  });

  it('KAPITAN_SIGNUP wins over the setting: shown read-only, a change → 409', async () => {
    const t = await createTestApp({ database, env: { KAPITAN_SIGNUP: 'invite' } });
    try {
      const admin = await signupUser(t.http);
      expect((await t.http.get('/api/admin/settings').set(bearer(admin.token))).body).toEqual({ signupMode: 'invite', signupModeSource: 'env' });
      expectError(await t.http.patch('/api/admin/settings').set(bearer(admin.token)).send({ signupMode: 'open' }), 409, 'conflict');
      expectError(await signup(t, { email: uniqueEmail('x'), password: TEST_PASSWORD }), 403, 'forbidden');
    } finally {
      await t.close();
    }
  });

  it('refused sign-ups are throttled per address: the 6th in the window → 429 with Retry-After; another address is fine', async () => {
    const t = await createTestApp({ database, env: { SIGNUP_MAX_FAILURES: '5', LOGIN_WINDOW_SECONDS: '60' } });
    try {
      const taken = await signupUser(t.http);
      const address = freshAddress();
      // Probing which addresses have an account: each "exists" counts.
      for (let i = 0; i < 5; i++) expectError(await signup(t, { email: taken.email, password: TEST_PASSWORD }, address), 409, 'conflict');
      const throttled = await signup(t, { email: uniqueEmail('new'), password: TEST_PASSWORD }, address);
      expectError(throttled, 429, 'too_many_requests');
      expect(Number(throttled.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(Number(throttled.headers['retry-after'])).toBeLessThanOrEqual(60);
      expect((await signup(t, { email: uniqueEmail('elsewhere'), password: TEST_PASSWORD }, freshAddress())).status).toBe(201);
      // A successful sign-up does not count.
      const quiet = freshAddress();
      for (let i = 0; i < 7; i++) expect((await signup(t, { email: uniqueEmail('ok'), password: TEST_PASSWORD }, quiet)).status).toBe(201);
    } finally {
      await t.close();
    }
  });

  describe('adding a project member by e-mail tells nothing about who has an account', () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await createTestApp({ database });
    });
    afterAll(() => t?.close());

    it('the answer is the same for an account and for an e-mail without one; the invitation becomes a membership at sign-up', async () => {
      const owner = await signupUser(t.http);
      const existing = await signupUser(t.http);
      const projectId = (await t.http.post('/api/projects').set(bearer(owner.token)).send({ name: 'p' }).expect(201)).body.id;
      const newcomer = uniqueEmail('newcomer');
      const a = await t.http.post(`/api/projects/${projectId}/members`).set(bearer(owner.token)).send({ email: existing.email, role: 'viewer' });
      const b = await t.http.post(`/api/projects/${projectId}/members`).set(bearer(owner.token)).send({ email: newcomer, role: 'operator' });
      expect([a.status, b.status]).toEqual([201, 201]);
      expect(AddMemberResponseSchema.strict().parse(a.body)).toEqual({ email: existing.email, role: 'viewer' });
      expect(AddMemberResponseSchema.strict().parse(b.body)).toEqual({ email: newcomer, role: 'operator' });
      expect(Object.keys(a.body).sort()).toEqual(Object.keys(b.body).sort());
      // Twice: the same 409 and words for both.
      const a2 = expectError(await t.http.post(`/api/projects/${projectId}/members`).set(bearer(owner.token)).send({ email: existing.email, role: 'viewer' }), 409, 'conflict');
      const b2 = expectError(await t.http.post(`/api/projects/${projectId}/members`).set(bearer(owner.token)).send({ email: newcomer, role: 'viewer' }), 409, 'conflict');
      expect(a2.message).toBe(b2.message);
      // The newcomer is no member yet; signing up makes them one, with the invited role.
      expect(await count(t, `SELECT COUNT(*) AS n FROM project_members WHERE projectId = '${projectId}'`)).toBe(2);
      const joined = await signupUser(t.http, newcomer.toUpperCase());
      const projects = await t.http.get('/api/projects').set(bearer(joined.token)).expect(200);
      expect(projects.body).toEqual([expect.objectContaining({ id: projectId, role: 'operator' })]);
      expect(await count(t, 'SELECT COUNT(*) AS n FROM project_invitations')).toBe(0);
    });

    it('a non-owner still cannot add (403), and a stranger gets 404, whether or not the e-mail has an account', async () => {
      const owner = await signupUser(t.http);
      const stranger = await signupUser(t.http);
      const projectId = (await t.http.post('/api/projects').set(bearer(owner.token)).send({ name: 'p' }).expect(201)).body.id;
      for (const email of [owner.email, uniqueEmail('nobody')]) {
        expectError(await t.http.post(`/api/projects/${projectId}/members`).set(bearer(stranger.token)).send({ email, role: 'viewer' }), 404, 'not_found');
      }
      expect(await count(t, 'SELECT COUNT(*) AS n FROM project_invitations')).toBe(0);
    });
  });
});
