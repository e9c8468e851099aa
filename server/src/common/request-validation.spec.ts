import { LIMITS } from '@kapitan/shared';
import {
  bearer,
  createTestApp,
  describeBothDatabases,
  expectError,
  expectValidationError,
  signupUser,
  TEST_PASSWORD,
  TestApp,
} from '../testing/test-app';

/**
 * threat model T12 for every endpoint of the foundation that takes a body:
 * missing fields, wrong types, strings over the limit, unknown fields,
 * malformed JSON, a body over 1 MB, no body at all. Each answers the one
 * error shape, a 400 names the field at fault in `details[].path`, and the
 * database is exactly as it was.
 */

interface Endpoint {
  name: string;
  method: 'post' | 'patch';
  path: () => string;
  token: () => string | undefined;
  /** A body the endpoint accepts; each case spoils one thing of it. */
  valid: () => Record<string, unknown>;
  required: string[];
  /** Field → strings one character over its limit. */
  tooLong: Record<string, unknown>;
  /** Field → values of the right type that are still wrong. */
  invalid: Record<string, unknown[]>;
}

const WRONG_TYPES: unknown[] = [123, true, null, [], {}, ['a@b.co']];
const overLongEmail = `${'a'.repeat(LIMITS.emailMax - 'example.test'.length)}@example.test`; // 255 characters

describeBothDatabases('request validation', (database) => {
  let t: TestApp;
  let owner: Awaited<ReturnType<typeof signupUser>>;
  let member: Awaited<ReturnType<typeof signupUser>>;
  let projectId: string;

  beforeAll(async () => {
    t = await createTestApp({ database });
    owner = await signupUser(t.http);
    member = await signupUser(t.http);
    projectId = (await t.http.post('/api/projects').set(bearer(owner.token)).send({ name: 'kept as it is' })).body.id;
    await t.http.post(`/api/projects/${projectId}/members`).set(bearer(owner.token)).send({ email: member.email, role: 'viewer' });
  });
  afterAll(() => t?.close());

  /** Everything a bad request could have changed. */
  async function snapshot(): Promise<unknown> {
    const q = (sql: string) => t.db.query(sql);
    return {
      users: await q('SELECT id, email, name, passwordHash, isAdmin, updatedAt FROM users ORDER BY id'),
      sessions: await q('SELECT id FROM sessions ORDER BY id'),
      loginFailures: await q('SELECT COUNT(*) AS n FROM login_failures'),
      projects: await q('SELECT id, name, description, updatedAt FROM projects ORDER BY id'),
      members: await q('SELECT projectId, userId, role FROM project_members ORDER BY projectId, userId'),
    };
  }

  const endpoints: Endpoint[] = [
    {
      name: 'POST /api/auth/signup',
      method: 'post',
      path: () => '/api/auth/signup',
      token: () => undefined,
      valid: () => ({ email: 'someone.new@example.test', password: TEST_PASSWORD, name: 'Someone' }),
      required: ['email', 'password'],
      tooLong: { email: overLongEmail, password: 'p'.repeat(LIMITS.passwordMax + 1), name: 'n'.repeat(LIMITS.nameMax + 1) },
      invalid: { email: ['', 'not-an-email', 'a@', '@b.co', 'a b@c.de'], password: ['', 'short'], name: ['', '   '] },
    },
    {
      name: 'POST /api/auth/login',
      method: 'post',
      path: () => '/api/auth/login',
      token: () => undefined,
      valid: () => ({ email: owner.email, password: TEST_PASSWORD }),
      required: ['email', 'password'],
      tooLong: { email: overLongEmail, password: 'p'.repeat(LIMITS.passwordMax + 1) },
      invalid: { email: ['', 'not-an-email'], password: [''] },
    },
    {
      name: 'POST /api/projects',
      method: 'post',
      path: () => '/api/projects',
      token: () => owner.token,
      valid: () => ({ name: 'a new project', description: 'what it is' }),
      required: ['name'],
      tooLong: { name: 'n'.repeat(LIMITS.nameMax + 1), description: 'd'.repeat(LIMITS.descriptionMax + 1) },
      invalid: { name: ['', '   '] },
    },
    {
      name: 'PATCH /api/projects/:projectId',
      method: 'patch',
      path: () => `/api/projects/${projectId}`,
      token: () => owner.token,
      valid: () => ({ name: 'renamed', description: 'redescribed' }),
      required: [],
      tooLong: { name: 'n'.repeat(LIMITS.nameMax + 1), description: 'd'.repeat(LIMITS.descriptionMax + 1) },
      invalid: { name: ['', '   '] },
    },
    {
      name: 'POST /api/projects/:projectId/members',
      method: 'post',
      path: () => `/api/projects/${projectId}/members`,
      token: () => owner.token,
      valid: () => ({ email: 'someone.new@example.test', role: 'viewer' }),
      required: ['email', 'role'],
      tooLong: { email: overLongEmail },
      invalid: { email: ['', 'not-an-email'], role: ['', 'admin', 'OWNER', 'root'] },
    },
    {
      name: 'PATCH /api/projects/:projectId/members/:userId',
      method: 'patch',
      path: () => `/api/projects/${projectId}/members/${member.user.id}`,
      token: () => owner.token,
      valid: () => ({ role: 'operator' }),
      required: ['role'],
      tooLong: { role: 'o'.repeat(17) },
      invalid: { role: ['', 'admin', 'Owner'] },
    },
  ];

  describe.each(endpoints.map((e) => [e.name, e] as const))('%s', (_, e) => {
    let before: unknown;
    beforeAll(async () => {
      before = await snapshot();
    });
    afterAll(async () => {
      // Whatever was sent, nothing was written (no user, session, failure count, project or member).
      expect(await snapshot()).toEqual(before);
    });

    const send = (body?: unknown, contentType?: string) => {
      let req = t.http[e.method](e.path());
      const token = e.token();
      if (token) req = req.set(bearer(token));
      if (contentType) req = req.set('Content-Type', contentType);
      return body === undefined ? req : req.send(body as object);
    };

    it('a missing required field is named', async () => {
      for (const field of e.required) {
        const body = e.valid();
        delete body[field];
        expectValidationError(await send(body), field);
      }
    });

    it('no body at all: 400 naming the required fields', async () => {
      for (const res of [await send(), await send({}), await send('', 'application/json')]) {
        if (e.required.length) {
          for (const field of e.required) expectValidationError(res, field);
        } else {
          // PATCH with nothing in it: no field is at fault, the body as a whole is.
          const body = expectError(res, 400, 'validation_failed');
          expect(body.details).toEqual([{ path: '(root)', message: 'nothing to update' }]);
        }
      }
    });

    it('a field of the wrong type is named', async () => {
      for (const field of Object.keys(e.valid())) {
        for (const value of WRONG_TYPES) expectValidationError(await send({ ...e.valid(), [field]: value }), field);
      }
    });

    it('a string over its limit is named', async () => {
      for (const [field, value] of Object.entries(e.tooLong)) expectValidationError(await send({ ...e.valid(), [field]: value }), field);
    });

    it('a value of the right type that is still wrong is named', async () => {
      for (const [field, values] of Object.entries(e.invalid)) {
        for (const value of values) expectValidationError(await send({ ...e.valid(), [field]: value }), field);
      }
    });

    it('an unknown field is named, and nothing is smuggled through it', async () => {
      for (const extra of ['isAdmin', 'id', 'role', 'userId', 'passwordHash', 'createdAt']) {
        if (extra in e.valid()) continue;
        expectValidationError(await send({ ...e.valid(), [extra]: extra === 'isAdmin' ? true : 'x' }), extra);
      }
      // Prototype keys arrive as own properties of the parsed JSON; they are unknown fields like any other.
      const proto = await send(`{${JSON.stringify(e.valid()).slice(1, -1)},"__proto__":{"isAdmin":true}}`, 'application/json');
      expectValidationError(proto, '__proto__');
      expectValidationError(await send({ ...e.valid(), constructor: { prototype: { isAdmin: true } } }), 'constructor');
    });

    it('malformed JSON → 400 malformed_body', async () => {
      for (const text of ['{"email": ', "{'email': 'a@b.co'}", '{"a":1,}', '{"a":1}}', 'undefined', '\u0000']) {
        expectError(await send(text, 'application/json'), 400, 'malformed_body');
      }
    });

    it('JSON that is not an object → 400', async () => {
      for (const text of ['"a string"', '42', 'null', 'true']) expectError(await send(text, 'application/json'), 400);
      expectError(await send('[]', 'application/json'), 400, 'validation_failed');
      expectError(await send(JSON.stringify([e.valid()]), 'application/json'), 400, 'validation_failed');
    });

    it('a body over 1 MB → 413, before anything reads it', async () => {
      const huge = JSON.stringify({ ...e.valid(), padding: 'x'.repeat(1024 * 1024) });
      expectError(await send(huge, 'application/json'), 413, 'payload_too_large');
    });

    it('a body that is not JSON is not read: 400 naming the required fields', async () => {
      for (const contentType of ['text/plain', 'application/x-www-form-urlencoded']) {
        const res = await send(JSON.stringify(e.valid()), contentType);
        if (e.required.length) expectValidationError(res, e.required[0]);
        else expectError(res, 400, 'validation_failed');
      }
    });
  });

  it('the valid bodies really are valid (so each refusal above was for its one defect)', async () => {
    for (const e of endpoints) {
      let req = t.http[e.method](e.path());
      const token = e.token();
      if (token) req = req.set(bearer(token));
      const res = await req.send(e.valid());
      expect({ endpoint: e.name, status: res.status }).toEqual({ endpoint: e.name, status: e.method === 'post' && !e.name.endsWith('login') ? 201 : 200 });
    }
  });
});
