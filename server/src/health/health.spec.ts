import { createTestApp, describeBothDatabases, TestApp } from '../testing/test-app';

/** What a load balancer and an API client ask first: is it up, and what does it offer. */
describeBothDatabases('health and API docs', (database) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ database });
  });
  afterAll(() => t?.close());

  it('GET /api/health answers 200 with the database up, without a token', async () => {
    const res = await t.http.get('/api/health');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      status: 'ok',
      database: 'up',
      databaseType: database === 'mysql' ? 'mysql' : 'better-sqlite3',
      latencyMs: expect.any(Number),
    });
    expect(res.headers['x-request-id']).toEqual(expect.any(String));
  });

  it('GET /api/health answers 503 when the database does not answer', async () => {
    // A second app of its own, so stopping its database harms no other test.
    const own = await createTestApp({ database });
    try {
      await own.db.destroy();
      const res = await own.http.get('/api/health');
      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({ status: 'degraded', database: 'down' });
      // The balancer's check does not depend on the database: the node still takes connections.
      const live = await own.http.get('/api/health/live');
      expect(live.status).toBe(200);
      expect(live.body).toEqual({ status: 'ok' });
    } finally {
      await own.close().catch(() => undefined);
    }
  });

  it('GET /api/docs-json is the OpenAPI document listing every foundation path', async () => {
    const res = await t.http.get('/api/docs-json');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/application\/json/);
    expect(res.body.openapi).toMatch(/^3\./);
    expect(res.body.info).toMatchObject({ title: 'Kapitan API' });
    const paths = res.body.paths as Record<string, Record<string, unknown>>;
    const expected: Record<string, string[]> = {
      '/api/auth/signup': ['post'],
      '/api/auth/login': ['post'],
      '/api/auth/logout': ['post'],
      '/api/me': ['get'],
      '/api/health': ['get'],
      '/api/health/live': ['get'],
      '/api/projects': ['get', 'post'],
      '/api/projects/{projectId}': ['get', 'patch', 'delete'],
      '/api/projects/{projectId}/members': ['get', 'post'],
      '/api/projects/{projectId}/members/{userId}': ['patch', 'delete'],
    };
    for (const [path, methods] of Object.entries(expected)) {
      expect({ path, methods: Object.keys(paths[path] ?? {}).sort() }).toEqual({ path, methods: [...methods].sort() });
    }
    // The request bodies come from the shared zod schemas.
    const signup = JSON.stringify(paths['/api/auth/signup'].post);
    expect(signup).toContain('requestBody');
    const schemas = JSON.stringify(res.body.components?.schemas ?? {});
    expect(schemas).toContain('password');
    expect(schemas).toContain('email');
  });

  it('GET /api/docs answers the Swagger UI as HTML', async () => {
    const res = await t.http.get('/api/docs').redirects(2);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/text\/html/);
    expect(res.text).toMatch(/swagger/i);
  });
});
