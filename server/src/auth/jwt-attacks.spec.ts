import { JwtService } from '@nestjs/jwt';
import { LIVE_NAMESPACE } from '@kapitan/shared';
import { createHmac } from 'node:crypto';
import { io } from 'socket.io-client';
import { bearer, createTestApp, describeBothDatabases, expectError, signupUser, TestApp } from '../testing/test-app';

/**
 * threat model T1: forged and tampered access tokens → 401, each one. The
 * attacks are built with the same JWT library the app uses and, where the
 * attack needs it, the app's real secret from its config, so each case
 * differs from a valid token in exactly the one way it names.
 */

const b64url = (v: object | string): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const parts = (token: string) => {
  const [h, p, s] = token.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url').toString()), payload: JSON.parse(Buffer.from(p, 'base64url').toString()), h, p, s };
};
const nowSeconds = () => Math.floor(Date.now() / 1000);

describeBothDatabases('JWT attacks', (database) => {
  let t: TestApp;
  const jwt = new JwtService({});
  /** A real user and a real session, so every forged token points at something that exists. */
  let alice: { id: string; sid: string; token: string };
  let bob: { id: string; sid: string; token: string };

  beforeAll(async () => {
    t = await createTestApp({ database });
    const a = await signupUser(t.http);
    const b = await signupUser(t.http);
    alice = { id: a.user.id, sid: parts(a.token).payload.sid, token: a.token };
    bob = { id: b.user.id, sid: parts(b.token).payload.sid, token: b.token };
  });
  afterAll(() => t?.close());

  const sign = (payload: object, secret = t.config.jwt.secret, algorithm: 'HS256' | 'HS384' | 'HS512' = 'HS256') =>
    jwt.sign({ ...payload }, { secret, algorithm });

  async function expectRefused(authorization: string | undefined): Promise<void> {
    for (const path of ['/api/me', '/api/projects']) {
      const req = t.http.get(path);
      if (authorization !== undefined) req.set('Authorization', authorization);
      expectError(await req, 401, 'unauthenticated');
    }
  }

  it('control: a token signed with the right secret for a live session works', async () => {
    const token = sign({ sub: alice.id, sid: alice.sid, exp: nowSeconds() + 600 });
    const res = await t.http.get('/api/me').set(bearer(token));
    expect(res.status).toBe(200);
    expect(res.body.id).toBe(alice.id);
  });

  it('refuses `alg: none` (no signature, and with the real signature left on)', async () => {
    const { payload, s } = parts(alice.token);
    await expectRefused(`Bearer ${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(payload)}.`);
    await expectRefused(`Bearer ${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(payload)}.${s}`);
    await expectRefused(`Bearer ${b64url({ alg: 'None', typ: 'JWT' })}.${b64url(payload)}.`);
  });

  it('refuses a token signed with another secret', async () => {
    await expectRefused(`Bearer ${sign({ sub: alice.id, sid: alice.sid }, 'an-attackers-guess-at-the-secret-0123456789')}`);
    // A near miss: the real secret but one character short.
    await expectRefused(`Bearer ${sign({ sub: alice.id, sid: alice.sid }, t.config.jwt.secret.slice(0, -1))}`);
  });

  it('refuses another HMAC algorithm even with the right secret (only HS256 is accepted)', async () => {
    await expectRefused(`Bearer ${sign({ sub: alice.id, sid: alice.sid }, t.config.jwt.secret, 'HS512')}`);
  });

  it('refuses a changed payload that keeps the original signature', async () => {
    const { h, payload, s } = parts(alice.token);
    // Become bob with alice's signature.
    await expectRefused(`Bearer ${h}.${b64url({ ...payload, sub: bob.id, sid: bob.sid })}.${s}`);
    // Live forever.
    await expectRefused(`Bearer ${h}.${b64url({ ...payload, exp: payload.exp + 10 * 365 * 86400 })}.${s}`);
    // One extra claim is enough to break it.
    await expectRefused(`Bearer ${h}.${b64url({ ...payload, isAdmin: true })}.${s}`);
    // The original is still fine: it was only the change that was refused.
    expect((await t.http.get('/api/me').set(bearer(alice.token))).status).toBe(200);
  });

  it("refuses a validly signed token that pairs one user with another user's session", async () => {
    await expectRefused(`Bearer ${sign({ sub: bob.id, sid: alice.sid })}`);
    await expectRefused(`Bearer ${sign({ sub: alice.id })}`);
    await expectRefused(`Bearer ${sign({ sid: alice.sid })}`);
  });

  it('refuses an expired token', async () => {
    await expectRefused(`Bearer ${sign({ sub: alice.id, sid: alice.sid, iat: nowSeconds() - 7200, exp: nowSeconds() - 60 })}`);
  });

  it('refuses a validly signed token for a live session that carries no `exp`', async () => {
    // The JWT library checks `exp` only when present: without this rule such a token would never expire.
    await expectRefused(`Bearer ${sign({ sub: alice.id, sid: alice.sid })}`);
    // A string `exp` the library would not sign: built by hand with the real secret.
    const h = b64url({ alg: 'HS256', typ: 'JWT' });
    const p = b64url({ sub: alice.id, sid: alice.sid, iat: nowSeconds(), exp: String(nowSeconds() + 600) });
    await expectRefused(`Bearer ${h}.${p}.${createHmac('sha256', t.config.jwt.secret).update(`${h}.${p}`).digest('base64url')}`);
    // The same claims with an `exp` work: only the missing expiry was refused.
    expect((await t.http.get('/api/me').set(bearer(sign({ sub: alice.id, sid: alice.sid, exp: nowSeconds() + 600 })))).status).toBe(200);
  });

  it('the /live handshake refuses a token without `exp` too, and accepts the same claims with one', async () => {
    const connect = (token: string) =>
      new Promise<boolean>((resolve) => {
        const socket = io(`${t.url}${LIVE_NAMESPACE}`, { auth: { token }, transports: ['websocket'], reconnection: false, forceNew: true });
        socket.once('connect', () => {
          socket.close();
          resolve(true);
        });
        socket.once('connect_error', () => {
          socket.close();
          resolve(false);
        });
      });
    expect(await connect(sign({ sub: alice.id, sid: alice.sid }))).toBe(false);
    expect(await connect(sign({ sub: alice.id, sid: alice.sid, exp: nowSeconds() + 600 }))).toBe(true);
  });

  it('refuses a token that is not valid yet (nbf in the future)', async () => {
    await expectRefused(`Bearer ${sign({ sub: alice.id, sid: alice.sid, nbf: nowSeconds() + 3600, exp: nowSeconds() + 7200 })}`);
  });

  it('refuses garbage', async () => {
    for (const garbage of ['garbage', 'a.b.c', '...', 'Bearer', `${alice.token}x`, alice.token.split('.').slice(0, 2).join('.'), 'é'.repeat(50)]) {
      await expectRefused(`Bearer ${garbage}`);
    }
    await expectRefused(`Bearer ${'A'.repeat(8000)}.${'B'.repeat(8000)}.${'C'.repeat(100)}`);
  });

  it('refuses a token not presented as a Bearer token', async () => {
    await expectRefused(undefined);
    await expectRefused('');
    await expectRefused('Bearer ');
    await expectRefused(alice.token);
    await expectRefused(`Basic ${alice.token}`);
    await expectRefused(`Token ${alice.token}`);
    // Not from the query string or a cookie either.
    expectError(await t.http.get(`/api/me?access_token=${alice.token}`), 401, 'unauthenticated');
    expectError(await t.http.get('/api/me').set('Cookie', `access_token=${alice.token}; token=${alice.token}`), 401, 'unauthenticated');
  });
});
