import { randomUUID } from 'node:crypto';
import { bearer, createTestApp, describeBothDatabases, expectError, signupUser, TestApp } from '../testing/test-app';

/**
 * One error shape everywhere, `{statusCode, code, message, details?, requestId}`,
 * and one request id per request: in the X-Request-Id response header, in the
 * error body and in the log line. A caller's sane X-Request-Id is kept.
 */
describeBothDatabases('error shape and request ids', (database) => {
  let t: TestApp;
  let token: string;
  beforeAll(async () => {
    t = await createTestApp({ database });
    token = (await signupUser(t.http)).token;
  });
  afterAll(() => t?.close());

  it('every kind of error carries the request id of its X-Request-Id header', async () => {
    const cases: [Promise<import('supertest').Response>, number, string][] = [
      [t.http.get('/api/no-such-route'), 404, 'not_found'],
      [t.http.get('/api/me'), 401, 'unauthenticated'],
      [t.http.get(`/api/projects/${randomUUID()}`).set(bearer(token)), 404, 'not_found'],
      [t.http.get('/api/projects/not-a-uuid').set(bearer(token)), 404, 'not_found'],
      [t.http.post('/api/projects').set(bearer(token)).send({}), 400, 'validation_failed'],
      [t.http.post('/api/projects').set(bearer(token)).set('Content-Type', 'application/json').send('{"name":'), 400, 'malformed_body'],
      [
        t.http.post('/api/projects').set(bearer(token)).set('Content-Type', 'application/json').send(JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) })),
        413,
        'payload_too_large',
      ],
      [t.http.post('/api/auth/signup').send({ email: 'x@example.test' }), 400, 'validation_failed'],
      [t.http.post('/api/auth/login').send({ email: 'nobody@example.test', password: 'wrong password' }), 401, 'unauthenticated'],
      [t.http.put('/api/projects').set(bearer(token)).send({}), 404, 'not_found'],
    ];
    const ids = new Set<string>();
    for (const [pending, status, code] of cases) {
      const res = await pending;
      const body = expectError(res, status, code);
      expect(res.headers['content-type']).toMatch(/application\/json/);
      ids.add(body.requestId);
    }
    // Fresh ids, one per request.
    expect(ids.size).toBe(cases.length);
  });

  it('successful responses carry an X-Request-Id too', async () => {
    const res = await t.http.get('/api/me').set(bearer(token));
    expect(res.status).toBe(200);
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("echoes a caller's sane X-Request-Id, in the header and in the error", async () => {
    const id = `ci-run-42.step_7-${Date.now()}`;
    const ok = await t.http.get('/api/health').set('X-Request-Id', id);
    expect(ok.headers['x-request-id']).toBe(id);
    const failed = await t.http.get('/api/me').set('X-Request-Id', id);
    expect(expectError(failed, 401).requestId).toBe(id);
    const tooBig = await t.http
      .post('/api/projects')
      .set(bearer(token))
      .set('X-Request-Id', id)
      .set('Content-Type', 'application/json')
      .send(JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) }));
    expect(expectError(tooBig, 413).requestId).toBe(id);
  });

  it('replaces an X-Request-Id that is not sane (too long, odd characters) with its own', async () => {
    for (const given of ['x'.repeat(101), 'has spaces', '<script>alert(1)</script>', 'semi;colon', 'ünïcode']) {
      const res = await t.http.get('/api/me').set('X-Request-Id', given);
      const body = expectError(res, 401);
      expect(body.requestId).not.toBe(given);
      expect(body.requestId).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  it('does not leak internals in an error: no stack, no SQL, no class names', async () => {
    const res = await t.http.get(`/api/projects/${randomUUID()}`).set(bearer(token));
    expectError(res, 404);
    expect(res.text).not.toMatch(/stack|SELECT|QueryFailedError|at .*\.ts:\d+/);
  });
});
