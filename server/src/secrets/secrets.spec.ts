import { ErrorBodySchema, SECRET_LIMITS, SecretSchema } from '@kapitan/shared';
import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiException } from '../common/api-exception';
import {
  bearer,
  createTestApp,
  describeBothDatabases,
  expectError,
  expectValidationError,
  signupUser,
  TestApp,
} from '../testing/test-app';
import { ProjectsService } from '../projects/projects.service';
import { UsersService } from '../users/users.service';
import { SecretCipher } from './secret-cipher';
import { SecretEntity } from './secret.entity';
import { SecretsService } from './secrets.service';

type Person = Awaited<ReturnType<typeof signupUser>>;

/**
 * Project secrets against the real app and database: owners write them,
 * every member sees only names, no response ever carries a value, the
 * database holds only ciphertext bound to its row, and a project the caller
 * is not a member of answers 404 everywhere. Then the API the runs use:
 * SecretsService.resolve.
 */
describeBothDatabases('secrets', (database) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ database });
  });
  afterAll(() => t?.close());

  /** Every response body of the suite, to prove no value ever leaves the server. */
  const seen: string[] = [];
  const record = async <R extends { text: string; body: unknown }>(p: PromiseLike<R>): Promise<R> => {
    const res = await p;
    seen.push(res.text ?? JSON.stringify(res.body));
    return res;
  };
  const as = (p: Person) => ({
    get: (path: string) => record(t.http.get(path).set(bearer(p.token))),
    post: (path: string, body?: unknown) => record(t.http.post(path).set(bearer(p.token)).send(body as object)),
    put: (path: string, body?: unknown) => record(t.http.put(path).set(bearer(p.token)).send(body as object)),
    delete: (path: string) => record(t.http.delete(path).set(bearer(p.token))),
  });
  /** A value that appears nowhere by chance, so finding it anywhere is a leak. */
  const newValue = () => `v-${randomBytes(12).toString('hex')}`;
  const values: string[] = [];
  const value = () => {
    const v = newValue();
    values.push(v);
    return v;
  };

  async function createProject(owner: Person): Promise<string> {
    const res = await as(owner).post('/api/projects', { name: `p ${randomUUID().slice(0, 8)}` });
    expect(res.status).toBe(201);
    return res.body.id;
  }
  async function addMember(owner: Person, projectId: string, who: Person, role: 'owner' | 'operator' | 'viewer') {
    expect((await as(owner).post(`/api/projects/${projectId}/members`, { email: who.email, role })).status).toBe(201);
  }
  async function createSecret(owner: Person, projectId: string, name: string, v = value()): Promise<string> {
    const res = await as(owner).post(`/api/projects/${projectId}/secrets`, { name, value: v });
    expect(res.status).toBe(201);
    return v;
  }
  /** The rows as stored, every column. */
  const stored = (projectId: string): Promise<Record<string, unknown>[]> =>
    t.db.query('SELECT * FROM project_secrets WHERE projectId = ? ORDER BY name', [projectId]);

  const secrets = () => t.app.get(SecretsService);

  afterAll(() => {
    // Not one response of this suite (lists, creates, rotations, errors) carried a value.
    const all = seen.join('\n');
    expect(values.length).toBeGreaterThan(10);
    for (const v of values) expect(all).not.toContain(v);
  });

  describe('CRUD', () => {
    it('creates, lists, rotates and deletes; responses show names and who, never the value', async () => {
      const alice = await signupUser(t.http);
      const id = await createProject(alice);
      const v1 = value();
      const created = await as(alice).post(`/api/projects/${id}/secrets`, { name: 'DB_PASSWORD', value: v1 });
      expect(created.status).toBe(201);
      const s = SecretSchema.strict().parse(created.body);
      expect(s).toMatchObject({ name: 'DB_PASSWORD', createdBy: { userId: alice.user.id, email: alice.email }, updatedBy: { userId: alice.user.id } });
      expect(s.createdAt).toBe(s.updatedAt);
      await createSecret(alice, id, 'API_TOKEN');
      await createSecret(alice, id, 'API9');
      await createSecret(alice, id, '_FIRST');

      const list = await as(alice).get(`/api/projects/${id}/secrets`);
      expect(list.status).toBe(200);
      // By code point, the same on both databases.
      expect(list.body.map((x: { name: string }) => x.name)).toEqual(['API9', 'API_TOKEN', 'DB_PASSWORD', '_FIRST']);
      for (const x of list.body) SecretSchema.strict().parse(x);

      const [before] = (await stored(id)).filter((r) => r.name === 'DB_PASSWORD');
      const v2 = value();
      const rotated = await as(alice).put(`/api/projects/${id}/secrets/DB_PASSWORD`, { value: v2 });
      expect(rotated.status).toBe(200);
      expect(SecretSchema.strict().parse(rotated.body)).toMatchObject({ name: 'DB_PASSWORD', createdAt: s.createdAt });
      expect(Date.parse(rotated.body.updatedAt)).toBeGreaterThanOrEqual(Date.parse(s.updatedAt));
      const [after] = (await stored(id)).filter((r) => r.name === 'DB_PASSWORD');
      expect(after.nonce).not.toBe(before.nonce);
      expect(after.ciphertext).not.toBe(before.ciphertext);
      expect((await secrets().resolve(id, ['DB_PASSWORD'])).env).toEqual({ DB_PASSWORD: v2 });

      expect((await as(alice).delete(`/api/projects/${id}/secrets/DB_PASSWORD`)).status).toBe(204);
      const left = async () => (await stored(id)).map((r) => r.name as string).sort();
      expect(await left()).toEqual(['API9', 'API_TOKEN', '_FIRST']);
      expectError(await as(alice).delete(`/api/projects/${id}/secrets/DB_PASSWORD`), 404, 'not_found');
      expectError(await as(alice).put(`/api/projects/${id}/secrets/DB_PASSWORD`, { value: value() }), 404, 'not_found');
      expect(await left()).toEqual(['API9', 'API_TOKEN', '_FIRST']);
    });

    it('a name that exists → 409, the stored value unchanged; the same name in another project is another secret', async () => {
      const alice = await signupUser(t.http);
      const id = await createProject(alice);
      const other = await createProject(alice);
      const v = await createSecret(alice, id, 'TOKEN');
      const before = await stored(id);
      expectError(await as(alice).post(`/api/projects/${id}/secrets`, { name: 'TOKEN', value: value() }), 409, 'conflict');
      expect(await stored(id)).toEqual(before);
      expect((await secrets().resolve(id, ['TOKEN'])).env.TOKEN).toBe(v);
      const w = await createSecret(alice, other, 'TOKEN');
      expect((await secrets().resolve(other, ['TOKEN'])).env.TOKEN).toBe(w);
      expect((await secrets().resolve(id, ['TOKEN'])).env.TOKEN).toBe(v);
    });

    it('creating one name three times at the same moment: one 201, two 409, one row', async () => {
      const alice = await signupUser(t.http);
      const id = await createProject(alice);
      const results = await Promise.all([0, 1, 2].map(() => as(alice).post(`/api/projects/${id}/secrets`, { name: 'RACE', value: value() })));
      expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409]);
      for (const r of results.filter((x) => x.status === 409)) expectError(r, 409, 'conflict');
      expect(await stored(id)).toHaveLength(1);
    });

    it(`holds at most ${SECRET_LIMITS.perProjectMax} secrets per project (409 beyond, nothing stored)`, async () => {
      const alice = await signupUser(t.http);
      const id = await createProject(alice);
      // Rows straight into the table: the count is what is checked, not how they came.
      const now = new Date();
      const filler = Array.from({ length: SECRET_LIMITS.perProjectMax - 1 }, (_, i) => ({
        projectId: id,
        name: `FILL_${i}`,
        keyId: 'x',
        nonce: 'x',
        ciphertext: 'x',
        createdBy: null,
        createdAt: now,
        updatedBy: null,
        updatedAt: now,
      }));
      await t.db.createQueryBuilder().insert().into('project_secrets').values(filler).execute();
      await createSecret(alice, id, 'LAST_ONE');
      expectError(await as(alice).post(`/api/projects/${id}/secrets`, { name: 'ONE_TOO_MANY', value: value() }), 409, 'conflict');
      expect(await stored(id)).toHaveLength(SECRET_LIMITS.perProjectMax);
    });

    it('go with their project', async () => {
      const alice = await signupUser(t.http);
      const id = await createProject(alice);
      await createSecret(alice, id, 'GONE_SOON');
      expect((await as(alice).delete(`/api/projects/${id}`)).status).toBe(204);
      expect(await stored(id)).toEqual([]);
    });
  });

  describe('at rest', () => {
    it('the database holds only ciphertext: no column of the row contains the value, in clear, base64 or hex', async () => {
      const alice = await signupUser(t.http);
      const id = await createProject(alice);
      const v = `correct horse battery staple ${randomBytes(6).toString('hex')}`;
      values.push(v);
      await createSecret(alice, id, 'PLAIN', v);
      await as(alice).put(`/api/projects/${id}/secrets/PLAIN`, { value: v }); // rotation writes it again
      const rows = await stored(id);
      expect(rows).toHaveLength(1);
      const row = JSON.stringify(rows[0]);
      for (const enc of [v, Buffer.from(v).toString('base64'), Buffer.from(v).toString('hex')]) expect(row).not.toContain(enc);
      expect(rows[0]).toMatchObject({ keyId: t.config.secrets.keyId });
      if (database === 'sqlite') {
        // The file itself (and its write-ahead log) neither.
        const dir = t.config.dataDir;
        for (const f of readdirSync(dir).filter((n) => n.startsWith('kapitan.sqlite'))) {
          expect({ file: f, leaks: readFileSync(join(dir, f)).includes(Buffer.from(v)) }).toEqual({ file: f, leaks: false });
        }
      }
    });

    it('a ciphertext copied into another project or under another name fails to open: a clear 500, never another value', async () => {
      const alice = await signupUser(t.http);
      const a = await createProject(alice);
      const b = await createProject(alice);
      await createSecret(alice, a, 'STOLEN');
      await createSecret(alice, b, 'STOLEN');
      await createSecret(alice, b, 'RENAMED');
      const [src] = await stored(a);
      for (const [project, name] of [
        [b, 'STOLEN'],
        [b, 'RENAMED'],
      ]) {
        await t.db.query('UPDATE project_secrets SET nonce = ?, ciphertext = ? WHERE projectId = ? AND name = ?', [src.nonce, src.ciphertext, project, name]);
        const err = await secrets().resolve(project, [name]).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ApiException);
        expect((err as ApiException).getStatus()).toBe(500);
        expect((err as ApiException).message).toMatch(new RegExp(`secret ${name} fails its integrity check`));
      }
    });

    it('a server with another KAPITAN_SECRETS_KEY refuses to open them, naming the variable, and never returns garbage', async () => {
      const alice = await signupUser(t.http);
      const id = await createProject(alice);
      const v = await createSecret(alice, id, 'KEYED');
      // The same service on the same database, as a node started with a different key would build it.
      // (A second Nest app in this process would take over passport's global strategy from the first.)
      const other = new SecretsService(
        t.db.getRepository(SecretEntity),
        new SecretCipher({ secrets: { key: randomBytes(32), keyId: 'another-key' } }),
        t.app.get(ProjectsService),
        t.app.get(UsersService),
      );
      const err = await other.resolve(id, ['KEYED']).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ApiException);
      expect((err as ApiException).getStatus()).toBe(500);
      expect((err as ApiException).message).toContain('KAPITAN_SECRETS_KEY');
      expect((err as ApiException).message).toContain(t.config.secrets.keyId);
      expect((err as ApiException).message).not.toContain(v);
      // It still lists the names: only the values need the key.
      expect((await other.list(alice.user.id, id)).map((s) => s.name)).toEqual(['KEYED']);
      // The right key still opens it.
      expect((await secrets().resolve(id, ['KEYED'])).env).toEqual({ KEYED: v });
    });
  });

  describe('roles', () => {
    let alice: Person, olga: Person, vic: Person;
    let id: string;
    beforeAll(async () => {
      [alice, olga, vic] = await Promise.all([0, 1, 2].map(() => signupUser(t.http)));
      id = await createProject(alice);
      await addMember(alice, id, olga, 'operator');
      await addMember(alice, id, vic, 'viewer');
      await createSecret(alice, id, 'SHARED');
    });

    it.each([
      ['viewer', () => vic],
      ['operator', () => olga],
    ])('a %s lists the names, and cannot create, rotate or delete (403); nothing changes', async (_, who) => {
      const list = await as(who()).get(`/api/projects/${id}/secrets`);
      expect(list.status).toBe(200);
      expect(list.body.map((s: { name: string }) => s.name)).toEqual(['SHARED']);
      const before = await stored(id);
      expectError(await as(who()).post(`/api/projects/${id}/secrets`, { name: 'MINE', value: value() }), 403, 'forbidden');
      expectError(await as(who()).put(`/api/projects/${id}/secrets/SHARED`, { value: value() }), 403, 'forbidden');
      expectError(await as(who()).delete(`/api/projects/${id}/secrets/SHARED`), 403, 'forbidden');
      // Below the role, a missing name is still 403: the role is checked first.
      expectError(await as(who()).delete(`/api/projects/${id}/secrets/NOT_THERE`), 403, 'forbidden');
      expect(await stored(id)).toEqual(before);
    });

    it('a second owner manages them too', async () => {
      const oscar = await signupUser(t.http);
      await addMember(alice, id, oscar, 'owner');
      await createSecret(oscar, id, 'BY_OSCAR');
      const list = (await as(vic).get(`/api/projects/${id}/secrets`)).body as { name: string; createdBy: { email: string } }[];
      expect(list.find((s) => s.name === 'BY_OSCAR')?.createdBy.email).toBe(oscar.email);
      expect((await as(oscar).delete(`/api/projects/${id}/secrets/BY_OSCAR`)).status).toBe(204);
    });
  });

  describe('a project the caller is not a member of', () => {
    it('answers 404 on every route, exactly as a project that does not exist, and nothing changes', async () => {
      const alice = await signupUser(t.http);
      const sam = await signupUser(t.http);
      const id = await createProject(alice);
      const samsOwn = await createProject(sam);
      await createSecret(alice, id, 'PRIVATE');
      const before = await stored(id);
      for (const pid of [id, randomUUID()]) {
        expectError(await as(sam).get(`/api/projects/${pid}/secrets`), 404, 'not_found');
        expectError(await as(sam).post(`/api/projects/${pid}/secrets`, { name: 'PRIVATE', value: value() }), 404, 'not_found');
        expectError(await as(sam).put(`/api/projects/${pid}/secrets/PRIVATE`, { value: value() }), 404, 'not_found');
        expectError(await as(sam).delete(`/api/projects/${pid}/secrets/PRIVATE`), 404, 'not_found');
      }
      // Through his own project he reaches only his own secrets.
      expectError(await as(sam).put(`/api/projects/${samsOwn}/secrets/PRIVATE`, { value: value() }), 404, 'not_found');
      expectError(await as(sam).delete(`/api/projects/${samsOwn}/secrets/PRIVATE`), 404, 'not_found');
      expect((await as(sam).get(`/api/projects/${samsOwn}/secrets`)).body).toEqual([]);
      await expect(secrets().resolve(samsOwn, ['PRIVATE'])).rejects.toMatchObject({ status: 400 });
      expect(await stored(id)).toEqual(before);
      expect(await stored(samsOwn)).toEqual([]);
    });

    it('needs a token on every route (401)', async () => {
      const id = randomUUID();
      for (const [method, path] of [
        ['get', `/api/projects/${id}/secrets`],
        ['post', `/api/projects/${id}/secrets`],
        ['put', `/api/projects/${id}/secrets/A`],
        ['delete', `/api/projects/${id}/secrets/A`],
      ] as const) {
        expectError(await t.http[method](path).send({ name: 'A', value: 'x' }), 401, 'unauthenticated');
      }
    });
  });

  describe('bad input', () => {
    let alice: Person;
    let id: string;
    beforeAll(async () => {
      alice = await signupUser(t.http);
      id = await createProject(alice);
      await createSecret(alice, id, 'KEPT');
    });

    it.each([
      ['a lower-case name', { name: 'db_password', value: 'x' }, 'name'],
      ['a name starting with a digit', { name: '1PASSWORD', value: 'x' }, 'name'],
      ['a name with a dash', { name: 'DB-PASSWORD', value: 'x' }, 'name'],
      ['a name with a space', { name: 'DB PASSWORD', value: 'x' }, 'name'],
      ['a name of 129 characters', { name: 'A'.repeat(129), value: 'x' }, 'name'],
      ['an empty name', { name: '', value: 'x' }, 'name'],
      ['a name that is not a string', { name: 42, value: 'x' }, 'name'],
      ['no name', { value: 'x' }, 'name'],
      ['an empty value', { name: 'EMPTY', value: '' }, 'value'],
      ['a value with NUL', { name: 'NUL', value: 'a\u0000b' }, 'value'],
      ['a value over 32 KiB', { name: 'BIG', value: 'é'.repeat(SECRET_LIMITS.valueMaxBytes / 2 + 1) }, 'value'],
      ['a value that is not a string', { name: 'OBJ', value: { nested: true } }, 'value'],
      ['no value', { name: 'NONE' }, 'value'],
      ['an unknown field', { name: 'EXTRA', value: 'x', projectId: randomUUID() }, 'projectId'],
    ])('create with %s → 400 naming %s; nothing stored', async (_, body, field) => {
      const before = await stored(id);
      expectValidationError(await as(alice).post(`/api/projects/${id}/secrets`, body), field as string);
      expect(await stored(id)).toEqual(before);
    });

    it('a value of exactly 32 KiB is accepted', async () => {
      const big = 'é'.repeat(SECRET_LIMITS.valueMaxBytes / 2);
      values.push(big);
      await createSecret(alice, id, 'EXACTLY_32K', big);
      expect((await secrets().resolve(id, ['EXACTLY_32K'])).env.EXACTLY_32K).toBe(big);
    });

    it.each([
      ['an empty value', { value: '' }, 'value'],
      ['a value with NUL', { value: '\u0000' }, 'value'],
      ['a value over 32 KiB', { value: 'x'.repeat(SECRET_LIMITS.valueMaxBytes + 1) }, 'value'],
      ['no value', {}, 'value'],
      ['a new name in the body', { value: 'x', name: 'RENAMED' }, 'name'],
    ])('rotate with %s → 400 naming %s; nothing changed', async (_, body, field) => {
      const before = await stored(id);
      expectValidationError(await as(alice).put(`/api/projects/${id}/secrets/KEPT`, body), field);
      expect(await stored(id)).toEqual(before);
    });

    it('malformed JSON → 400; a path name no secret could have → 404; nothing changed', async () => {
      const before = await stored(id);
      const res = await record(
        t.http.post(`/api/projects/${id}/secrets`).set(bearer(alice.token)).set('content-type', 'application/json').send('{"name": "A", "value": '),
      );
      expectError(res, 400, 'malformed_body');
      for (const bad of ['kept', 'KE%20PT', 'A'.repeat(129), '1A', '..%2FKEPT', "KEPT'%20OR%20'1'='1"]) {
        expectError(await as(alice).put(`/api/projects/${id}/secrets/${bad}`, { value: 'x' }), 404, 'not_found');
        expectError(await as(alice).delete(`/api/projects/${id}/secrets/${bad}`), 404, 'not_found');
      }
      expect(await stored(id)).toEqual(before);
    });
  });

  describe('resolve (for runs)', () => {
    let alice: Person;
    let id: string;
    let db: string, key: string;
    beforeAll(async () => {
      alice = await signupUser(t.http);
      id = await createProject(alice);
      db = await createSecret(alice, id, 'DB_PASSWORD');
      key = `-----BEGIN KEY-----\n${randomBytes(24).toString('base64')}\n-----END KEY-----\n`;
      values.push(key);
      await createSecret(alice, id, 'SSH_KEY', key);
    });

    it('gives the environment and the values to mask, each name once', async () => {
      const r = await secrets().resolve(id, ['SSH_KEY', 'DB_PASSWORD', 'DB_PASSWORD']);
      expect(r.env).toEqual({ SSH_KEY: key, DB_PASSWORD: db });
      expect(r.masks.sort()).toEqual([db, key].sort());
      expect(await secrets().resolve(id, [])).toEqual({ env: {}, masks: [] });
    });

    it('an unknown name → a 400 ApiException naming it, in the error shape', async () => {
      const err = (await secrets().resolve(id, ['DB_PASSWORD', 'NOPE', 'ALSO_NOPE']).catch((e: unknown) => e)) as ApiException;
      expect(err).toBeInstanceOf(ApiException);
      expect(err.getStatus()).toBe(400);
      expect(err.message).toBe('unknown secrets: NOPE, ALSO_NOPE');
      expect(err.details).toEqual([
        { path: 'secrets', message: 'no secret named NOPE in this project' },
        { path: 'secrets', message: 'no secret named ALSO_NOPE in this project' },
      ]);
      ErrorBodySchema.parse({ statusCode: 400, code: err.code, message: err.message, details: err.details });
      await expect(secrets().assertExist(id, ['DB_PASSWORD', 'NOPE'], 'schedule.secrets')).rejects.toMatchObject({
        details: [{ path: 'schedule.secrets', message: 'no secret named NOPE in this project' }],
      });
      await expect(secrets().assertExist(id, ['DB_PASSWORD', 'SSH_KEY'])).resolves.toBeUndefined();
    });
  });

  it('documents the routes in OpenAPI with the shared schemas', async () => {
    const doc = (await t.http.get('/api/docs-json')).body as { paths: Record<string, Record<string, unknown>> };
    expect(Object.keys(doc.paths['/api/projects/{projectId}/secrets']).sort()).toEqual(['get', 'post']);
    expect(Object.keys(doc.paths['/api/projects/{projectId}/secrets/{name}']).sort()).toEqual(['delete', 'put']);
    expect(JSON.stringify(doc.paths['/api/projects/{projectId}/secrets'].post)).toContain('CreateSecretDto');
  });
});
