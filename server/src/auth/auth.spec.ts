import { AuthResponseSchema, UserSchema } from '@kapitan/shared';
import type { Response } from 'supertest';
import { UsersService } from '../users/users.service';
import {
  bearer,
  createTestApp,
  describeBothDatabases,
  expectError,
  signupUser,
  TEST_PASSWORD,
  TestApp,
  uniqueEmail,
} from '../testing/test-app';

/**
 * Sign-up, log-in, who-am-I and log-out against the real app and database:
 * sessions are rows, so ending one (log-out, a deleted user) ends its token
 * at once (threat model T2); passwords never come back and are stored with
 * argon2id (threat model T4).
 */
describeBothDatabases('auth', (database) => {
  let t: TestApp;
  /** Every response of this file, to prove no password or hash ever left the server. */
  const seen: Response[] = [];
  const track = (res: Response): Response => (seen.push(res), res);

  beforeAll(async () => {
    t = await createTestApp({ database });
  });
  afterAll(() => t?.close());

  const signup = async (body: object) => track(await t.http.post('/api/auth/signup').send(body));
  const login = async (email: string, password: string) => track(await t.http.post('/api/auth/login').send({ email, password }));
  const me = async (token: string) => track(await t.http.get('/api/me').set(bearer(token)));
  const logout = async (token: string) => track(await t.http.post('/api/auth/logout').set(bearer(token)));
  const storedHash = async (userId: string): Promise<string> => {
    const [row] = await t.db.query('SELECT passwordHash FROM users WHERE id = ?', [userId]);
    return row.passwordHash;
  };

  describe('sign-up', () => {
    it('makes the first account the admin and no later one', async () => {
      const first = await signup({ email: uniqueEmail('first'), password: TEST_PASSWORD, name: '  Ada Admin  ' });
      expect(first.status).toBe(201);
      const body = AuthResponseSchema.strict().parse(first.body);
      expect(UserSchema.strict().parse(body.user)).toMatchObject({ isAdmin: true, name: 'Ada Admin' });
      const second = await signup({ email: uniqueEmail('second'), password: TEST_PASSWORD });
      expect(second.status).toBe(201);
      expect(second.body.user).toMatchObject({ isAdmin: false, name: null });
      // The token works straight away.
      expect((await me(second.body.accessToken)).body.id).toBe(second.body.user.id);
    });

    it('refuses a second account for one email with 409, whatever its letter case', async () => {
      const email = `Mixed.Case-${Date.now()}@Example.TEST`;
      const created = await signup({ email, password: TEST_PASSWORD });
      expect(created.status).toBe(201);
      expect(created.body.user.email).toBe(email.toLowerCase());
      const users = await t.db.query('SELECT COUNT(*) AS n FROM users');
      for (const again of [email, email.toLowerCase(), email.toUpperCase()]) {
        expectError(await signup({ email: again, password: 'another password 1' }), 409, 'conflict');
      }
      expect(await t.db.query('SELECT COUNT(*) AS n FROM users')).toEqual(users);
      // The original password is untouched, and log-in ignores case too.
      expect((await login(email.toUpperCase(), TEST_PASSWORD)).status).toBe(200);
    });

    it('answers one 409 when two sign-ups race for the same email', async () => {
      const email = uniqueEmail('race');
      const results = await Promise.all([0, 1, 2, 3].map(() => signup({ email, password: TEST_PASSWORD })));
      expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409]);
      for (const r of results.filter((x) => x.status === 409)) expectError(r, 409, 'conflict');
      const [{ n }] = await t.db.query('SELECT COUNT(*) AS n FROM users WHERE email = ?', [email]);
      expect(Number(n)).toBe(1);
    });

    it('stores the password as an argon2id hash, never as given', async () => {
      const password = `a password nobody else uses ${Date.now()}`;
      const res = await signup({ email: uniqueEmail(), password });
      const hash = await storedHash(res.body.user.id);
      expect(hash).toMatch(/^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$/);
      expect(hash).not.toContain(password);
      // A slow KDF: at least OWASP's minimum for argon2id (19 MiB, 2 passes).
      const [, m, tc] = /m=(\d+),t=(\d+)/.exec(hash)!;
      expect(Number(m)).toBeGreaterThanOrEqual(19456);
      expect(Number(tc)).toBeGreaterThanOrEqual(2);
      // Two accounts with one password get different hashes (salted).
      const other = await signup({ email: uniqueEmail(), password });
      expect(await storedHash(other.body.user.id)).not.toBe(hash);
    });
  });

  describe('log-in', () => {
    it('answers the user and a working token for the right password', async () => {
      const { user, email } = await signupUser(t.http);
      const res = await login(email, TEST_PASSWORD);
      expect(res.status).toBe(200);
      expect(AuthResponseSchema.strict().parse(res.body).user).toEqual(user);
      expect((await me(res.body.accessToken)).body).toEqual(user);
    });

    it('answers the same 401 for a wrong password and for no such account', async () => {
      const { email } = await signupUser(t.http);
      const wrong = expectError(await login(email, 'not the password'), 401, 'unauthenticated');
      const unknown = expectError(await login(uniqueEmail('nobody'), TEST_PASSWORD), 401, 'unauthenticated');
      // Nothing but the request id tells them apart: whether an account exists is not told.
      expect({ ...wrong, requestId: '' }).toEqual({ ...unknown, requestId: '' });
    });

    it('gives every log-in its own session: two tokens for one user', async () => {
      const { email, token } = await signupUser(t.http);
      const second = (await login(email, TEST_PASSWORD)).body.accessToken;
      expect(second).not.toBe(token);
      expect((await me(token)).status).toBe(200);
      expect((await me(second)).status).toBe(200);
    });
  });

  describe('me', () => {
    it('answers the caller without any secret', async () => {
      const { user, token } = await signupUser(t.http);
      const res = await me(token);
      expect(res.status).toBe(200);
      expect(UserSchema.strict().parse(res.body)).toEqual(user);
    });

    it('answers 401 without a token', async () => {
      expectError(track(await t.http.get('/api/me')), 401, 'unauthenticated');
    });
  });

  describe('log-out', () => {
    it('ends that token at once (401), and only that session', async () => {
      const { email, token } = await signupUser(t.http);
      const other = (await login(email, TEST_PASSWORD)).body.accessToken;
      const res = await logout(token);
      expect(res.status).toBe(204);
      expect(res.text).toBe('');
      expectError(await me(token), 401, 'unauthenticated');
      expectError(await logout(token), 401, 'unauthenticated');
      expectError(track(await t.http.get('/api/projects').set(bearer(token))), 401, 'unauthenticated');
      // The same user's other session goes on.
      expect((await me(other)).status).toBe(200);
    });

    it('needs a token', async () => {
      expectError(track(await t.http.post('/api/auth/logout')), 401, 'unauthenticated');
    });
  });

  describe('a deleted user', () => {
    it("loses every token at once (401) and their sessions go with them", async () => {
      const { user, email, token } = await signupUser(t.http);
      const second = (await login(email, TEST_PASSWORD)).body.accessToken;
      expect((await me(token)).status).toBe(200);
      await t.app.get(UsersService).delete(user.id);
      expectError(await me(token), 401, 'unauthenticated');
      expectError(await me(second), 401, 'unauthenticated');
      expectError(await login(email, TEST_PASSWORD), 401, 'unauthenticated');
      const [{ n }] = await t.db.query('SELECT COUNT(*) AS n FROM sessions WHERE userId = ?', [user.id]);
      expect(Number(n)).toBe(0);
    });
  });

  it('never sent a password or a password hash in any response of this file', () => {
    expect(seen.length).toBeGreaterThan(20);
    for (const res of seen) {
      const text = res.text ?? '';
      expect(text).not.toMatch(/password"\s*:/i);
      expect(text).not.toMatch(/passwordHash|\$argon2/);
      expect(text).not.toContain(TEST_PASSWORD);
    }
  });
});
