import { AddMemberResponseSchema, MemberSchema, ProjectSchema } from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import {
  bearer,
  createTestApp,
  describeBothDatabases,
  expectError,
  signupUser,
  TestApp,
} from '../testing/test-app';

type Person = Awaited<ReturnType<typeof signupUser>>;

/**
 * Projects and their members against the real app and database: roles
 * (owner > operator > viewer), a project always keeps an owner, and a
 * project the caller is not a member of answers 404 on every route, the
 * same as one that does not exist (threat model T8), with nothing changed.
 */
describeBothDatabases('projects', (database) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ database });
  });
  afterAll(() => t?.close());

  const as = (p: Person) => ({
    get: (path: string) => t.http.get(path).set(bearer(p.token)),
    post: (path: string, body?: object) => t.http.post(path).set(bearer(p.token)).send(body),
    patch: (path: string, body?: object) => t.http.patch(path).set(bearer(p.token)).send(body),
    delete: (path: string) => t.http.delete(path).set(bearer(p.token)),
  });

  async function createProject(owner: Person, name = `project ${randomUUID().slice(0, 8)}`): Promise<string> {
    const res = await as(owner).post('/api/projects', { name });
    expect(res.status).toBe(201);
    return res.body.id;
  }

  async function addMember(owner: Person, projectId: string, who: Person, role: 'owner' | 'operator' | 'viewer'): Promise<void> {
    const res = await as(owner).post(`/api/projects/${projectId}/members`, { email: who.email, role });
    expect(res.status).toBe(201);
  }

  /** What the database holds for a project: the row and its members. */
  async function stored(projectId: string) {
    const project = await t.db.query('SELECT id, name, description, updatedAt FROM projects WHERE id = ?', [projectId]);
    const members = await t.db.query('SELECT userId, role FROM project_members WHERE projectId = ? ORDER BY userId', [projectId]);
    return { project, members };
  }

  async function owners(projectId: string): Promise<string[]> {
    const rows: { userId: string }[] = await t.db.query("SELECT userId FROM project_members WHERE projectId = ? AND role = 'owner'", [projectId]);
    return rows.map((r) => r.userId).sort();
  }

  describe('CRUD', () => {
    it('creates a project with the caller as its owner', async () => {
      const alice = await signupUser(t.http);
      const res = await as(alice).post('/api/projects', { name: '  Acme web  ', description: 'the shop' });
      expect(res.status).toBe(201);
      const project = ProjectSchema.strict().parse(res.body);
      expect(project).toMatchObject({ name: 'Acme web', description: 'the shop', role: 'owner' });
      expect(project.createdAt).toBe(project.updatedAt);
      expect((await stored(project.id)).members).toEqual([{ userId: alice.user.id, role: 'owner' }]);
      // The description is optional.
      expect((await as(alice).post('/api/projects', { name: 'bare' })).body.description).toBe('');
    });

    it('reads, updates and deletes it', async () => {
      const alice = await signupUser(t.http);
      const id = await createProject(alice, 'before');
      const created = (await as(alice).get(`/api/projects/${id}`)).body;
      expect(created).toMatchObject({ id, name: 'before', role: 'owner' });

      const renamed = await as(alice).patch(`/api/projects/${id}`, { name: 'after' });
      expect(renamed.status).toBe(200);
      expect(renamed.body).toMatchObject({ id, name: 'after', description: created.description });
      expect(Date.parse(renamed.body.updatedAt)).toBeGreaterThanOrEqual(Date.parse(created.updatedAt));
      const described = await as(alice).patch(`/api/projects/${id}`, { description: 'now described' });
      expect(described.body).toMatchObject({ name: 'after', description: 'now described' });
      expect((await as(alice).get(`/api/projects/${id}`)).body).toMatchObject({ name: 'after', description: 'now described' });

      const deleted = await as(alice).delete(`/api/projects/${id}`);
      expect(deleted.status).toBe(204);
      expectError(await as(alice).get(`/api/projects/${id}`), 404, 'not_found');
      expect(await stored(id)).toEqual({ project: [], members: [] });
      expectError(await as(alice).delete(`/api/projects/${id}`), 404, 'not_found');
    });

    it("lists only the caller's projects, each with the caller's role", async () => {
      const alice = await signupUser(t.http);
      const bob = await signupUser(t.http);
      const a1 = await createProject(alice);
      const a2 = await createProject(alice);
      const b1 = await createProject(bob);
      await addMember(alice, a2, bob, 'viewer');

      const mine = (await as(alice).get('/api/projects')).body as { id: string; role: string }[];
      expect(mine.map((p) => p.id).sort()).toEqual([a1, a2].sort());
      const bobs = (await as(bob).get('/api/projects')).body as { id: string; role: string }[];
      expect(bobs.map((p) => [p.id, p.role]).sort()).toEqual([[a2, 'viewer'], [b1, 'owner']].sort());
      for (const p of bobs) ProjectSchema.strict().parse(p);
      const newcomer = await signupUser(t.http);
      expect((await as(newcomer).get('/api/projects')).body).toEqual([]);
    });
  });

  describe('members', () => {
    it('lists, adds (by email, any letter case), changes and removes members', async () => {
      const alice = await signupUser(t.http);
      const bob = await signupUser(t.http);
      const id = await createProject(alice);
      const added = await as(alice).post(`/api/projects/${id}/members`, { email: bob.email.toUpperCase(), role: 'operator' });
      expect(added.status).toBe(201);
      // The answer names no account (see "adding by e-mail tells nothing" in invitations/signup-controls.spec.ts); the list does.
      expect(AddMemberResponseSchema.strict().parse(added.body)).toEqual({ email: bob.email, role: 'operator' });

      const list = await as(bob).get(`/api/projects/${id}/members`);
      expect(list.status).toBe(200);
      expect(list.body.map((m: { userId: string; role: string }) => [m.userId, m.role])).toEqual([
        [alice.user.id, 'owner'],
        [bob.user.id, 'operator'],
      ]);
      for (const m of list.body) MemberSchema.strict().parse(m);

      const changed = await as(alice).patch(`/api/projects/${id}/members/${bob.user.id}`, { role: 'viewer' });
      expect(changed.status).toBe(200);
      expect(changed.body).toMatchObject({ userId: bob.user.id, role: 'viewer' });
      expect((await as(bob).get(`/api/projects/${id}`)).body.role).toBe('viewer');

      expect((await as(alice).delete(`/api/projects/${id}/members/${bob.user.id}`)).status).toBe(204);
      expectError(await as(bob).get(`/api/projects/${id}`), 404, 'not_found');
      expect((await stored(id)).members).toEqual([{ userId: alice.user.id, role: 'owner' }]);
    });

    it('adding an unknown email → 201 and no member (an invitation waits); adding a member twice → 409; nothing changed', async () => {
      const alice = await signupUser(t.http);
      const bob = await signupUser(t.http);
      const id = await createProject(alice);
      await addMember(alice, id, bob, 'viewer');
      const before = await stored(id);
      expect((await as(alice).post(`/api/projects/${id}/members`, { email: 'nobody-here@example.test', role: 'viewer' })).status).toBe(201);
      expectError(await as(alice).post(`/api/projects/${id}/members`, { email: bob.email, role: 'owner' }), 409, 'conflict');
      expectError(await as(alice).post(`/api/projects/${id}/members`, { email: alice.email, role: 'viewer' }), 409, 'conflict');
      expect(await stored(id)).toEqual(before);
    });

    it('adding one person twice at the same moment: one 201, one 409, one row', async () => {
      const alice = await signupUser(t.http);
      const bob = await signupUser(t.http);
      const id = await createProject(alice);
      const results = await Promise.all(
        [0, 1, 2].map(() => as(alice).post(`/api/projects/${id}/members`, { email: bob.email, role: 'viewer' })),
      );
      expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409]);
      for (const r of results.filter((x) => x.status === 409)) expectError(r, 409, 'conflict');
      expect((await stored(id)).members).toHaveLength(2);
    });

    it('changing or removing someone who is not a member → 404', async () => {
      const alice = await signupUser(t.http);
      const bob = await signupUser(t.http);
      const id = await createProject(alice);
      expectError(await as(alice).patch(`/api/projects/${id}/members/${bob.user.id}`, { role: 'viewer' }), 404, 'not_found');
      expectError(await as(alice).delete(`/api/projects/${id}/members/${bob.user.id}`), 404, 'not_found');
      expectError(await as(alice).delete(`/api/projects/${id}/members/${randomUUID()}`), 404, 'not_found');
    });

    it('a member may leave', async () => {
      const alice = await signupUser(t.http);
      const vic = await signupUser(t.http);
      const id = await createProject(alice);
      await addMember(alice, id, vic, 'viewer');
      expect((await as(vic).delete(`/api/projects/${id}/members/${vic.user.id}`)).status).toBe(204);
      expectError(await as(vic).get(`/api/projects/${id}`), 404, 'not_found');
      expect((await as(vic).get('/api/projects')).body).toEqual([]);
      expect((await stored(id)).members).toEqual([{ userId: alice.user.id, role: 'owner' }]);
    });
  });

  describe('the last owner', () => {
    it('cannot demote or remove themselves (409); with a second owner they can', async () => {
      const alice = await signupUser(t.http);
      const bob = await signupUser(t.http);
      const id = await createProject(alice);
      await addMember(alice, id, bob, 'operator');
      for (const role of ['operator', 'viewer']) {
        expectError(await as(alice).patch(`/api/projects/${id}/members/${alice.user.id}`, { role }), 409, 'conflict');
      }
      expectError(await as(alice).delete(`/api/projects/${id}/members/${alice.user.id}`), 409, 'conflict');
      expect(await owners(id)).toEqual([alice.user.id]);
      // Staying owner is not a demotion.
      expect((await as(alice).patch(`/api/projects/${id}/members/${alice.user.id}`, { role: 'owner' })).status).toBe(200);

      expect((await as(alice).patch(`/api/projects/${id}/members/${bob.user.id}`, { role: 'owner' })).status).toBe(200);
      expect((await as(alice).patch(`/api/projects/${id}/members/${alice.user.id}`, { role: 'viewer' })).status).toBe(200);
      // Now bob is the last owner.
      expectError(await as(bob).delete(`/api/projects/${id}/members/${bob.user.id}`), 409, 'conflict');
      expect((await as(alice).delete(`/api/projects/${id}/members/${alice.user.id}`)).status).toBe(204);
      expect(await owners(id)).toEqual([bob.user.id]);
    });

    it('survives two owners demoting or removing each other at the same moment: one owner is always left', async () => {
      for (let round = 0; round < 6; round++) {
        const alice = await signupUser(t.http);
        const bob = await signupUser(t.http);
        const id = await createProject(alice);
        await addMember(alice, id, bob, 'owner');
        const [a, b] =
          round % 2
            ? await Promise.all([
                as(alice).delete(`/api/projects/${id}/members/${bob.user.id}`),
                as(bob).delete(`/api/projects/${id}/members/${alice.user.id}`),
              ])
            : await Promise.all([
                as(alice).patch(`/api/projects/${id}/members/${bob.user.id}`, { role: 'viewer' }),
                as(bob).patch(`/api/projects/${id}/members/${alice.user.id}`, { role: 'viewer' }),
              ]);
        expect((await owners(id)).length).toBe(1);
        // Exactly one change went through; the other was refused, not failed.
        const statuses = [a.status, b.status].sort();
        expect(statuses[0]).toBeLessThan(300);
        expect([403, 404, 409]).toContain(statuses[1]);
      }
    });
  });

  describe('roles', () => {
    let alice: Person, olga: Person, vic: Person, carl: Person;
    let id: string;
    beforeAll(async () => {
      [alice, olga, vic, carl] = await Promise.all([0, 1, 2, 3].map(() => signupUser(t.http)));
      id = await createProject(alice);
      await addMember(alice, id, olga, 'operator');
      await addMember(alice, id, vic, 'viewer');
      await addMember(alice, id, carl, 'viewer');
    });

    it('a viewer reads the project and its members', async () => {
      expect((await as(vic).get(`/api/projects/${id}`)).body.role).toBe('viewer');
      expect((await as(vic).get(`/api/projects/${id}/members`)).body).toHaveLength(4);
    });

    it.each([
      ['viewer', () => vic],
      ['operator', () => olga],
    ])('a %s cannot change the project or manage members (403), and nothing changes', async (_, who) => {
      const before = await stored(id);
      const p = as(who());
      expectError(await p.patch(`/api/projects/${id}`, { name: 'taken over' }), 403, 'forbidden');
      expectError(await p.delete(`/api/projects/${id}`), 403, 'forbidden');
      expectError(await p.post(`/api/projects/${id}/members`, { email: (await signupUser(t.http)).email, role: 'owner' }), 403, 'forbidden');
      expectError(await p.patch(`/api/projects/${id}/members/${who().user.id}`, { role: 'owner' }), 403, 'forbidden');
      expectError(await p.patch(`/api/projects/${id}/members/${carl.user.id}`, { role: 'operator' }), 403, 'forbidden');
      expectError(await p.delete(`/api/projects/${id}/members/${carl.user.id}`), 403, 'forbidden');
      expectError(await p.delete(`/api/projects/${id}/members/${alice.user.id}`), 403, 'forbidden');
      expect(await stored(id)).toEqual(before);
    });
  });

  describe('a project the caller is not a member of', () => {
    let alice: Person, bob: Person, sam: Person;
    let id: string;
    beforeAll(async () => {
      [alice, bob, sam] = await Promise.all([0, 1, 2].map(() => signupUser(t.http)));
      id = await createProject(alice, 'private');
      await addMember(alice, id, bob, 'viewer');
    });

    it('answers 404 on every route, exactly as a project that does not exist, and nothing changes', async () => {
      const before = await stored(id);
      const missing = randomUUID();
      const routes = (pid: string) => [
        () => as(sam).get(`/api/projects/${pid}`),
        () => as(sam).patch(`/api/projects/${pid}`, { name: 'mine now' }),
        () => as(sam).delete(`/api/projects/${pid}`),
        () => as(sam).get(`/api/projects/${pid}/members`),
        () => as(sam).post(`/api/projects/${pid}/members`, { email: sam.email, role: 'owner' }),
        () => as(sam).patch(`/api/projects/${pid}/members/${alice.user.id}`, { role: 'viewer' }),
        () => as(sam).patch(`/api/projects/${pid}/members/${sam.user.id}`, { role: 'owner' }),
        () => as(sam).delete(`/api/projects/${pid}/members/${bob.user.id}`),
        () => as(sam).delete(`/api/projects/${pid}/members/${alice.user.id}`),
        () => as(sam).delete(`/api/projects/${pid}/members/${sam.user.id}`),
      ];
      const real = routes(id);
      const fake = routes(missing);
      for (let i = 0; i < real.length; i++) {
        const a = expectError(await real[i](), 404, 'not_found');
        const b = expectError(await fake[i](), 404, 'not_found');
        // Same words for "exists but not yours" and "does not exist".
        expect(a.message).toBe(b.message);
      }
      expect(await stored(id)).toEqual(before);
      expect((await as(sam).get('/api/projects')).body).toEqual([]);
      // And the owner sees it as it was.
      expect((await as(alice).get(`/api/projects/${id}`)).body).toMatchObject({ name: 'private' });
      expect((await as(alice).get(`/api/projects/${id}/members`)).body).toHaveLength(2);
    });

    it('answers 404 for path ids that are not UUIDs', async () => {
      for (const bad of ['not-a-uuid', '1', "1' OR '1'='1", '..%2F..%2Fetc', `${id}x`, id.replace(/-/g, '')]) {
        expectError(await as(alice).get(`/api/projects/${bad}`), 404, 'not_found');
        expectError(await as(alice).patch(`/api/projects/${bad}`, { name: 'x' }), 404, 'not_found');
        expectError(await as(alice).delete(`/api/projects/${bad}`), 404, 'not_found');
        expectError(await as(alice).get(`/api/projects/${bad}/members`), 404, 'not_found');
        expectError(await as(alice).post(`/api/projects/${bad}/members`, { email: sam.email, role: 'viewer' }), 404, 'not_found');
        expectError(await as(alice).patch(`/api/projects/${id}/members/${bad}`, { role: 'viewer' }), 404, 'not_found');
        expectError(await as(alice).delete(`/api/projects/${id}/members/${bad}`), 404, 'not_found');
      }
      // An upper-case UUID is the same id.
      expect((await as(alice).get(`/api/projects/${id.toUpperCase()}`)).status).toBe(200);
      expect((await stored(id)).members).toHaveLength(2);
    });

    it('needs a token on every route (401 before anything else)', async () => {
      for (const [method, path] of [
        ['get', '/api/projects'],
        ['post', '/api/projects'],
        ['get', `/api/projects/${id}`],
        ['patch', `/api/projects/${id}`],
        ['delete', `/api/projects/${id}`],
        ['get', `/api/projects/${id}/members`],
        ['post', `/api/projects/${id}/members`],
        ['patch', `/api/projects/${id}/members/${bob.user.id}`],
        ['delete', `/api/projects/${id}/members/${bob.user.id}`],
      ] as const) {
        expectError(await t.http[method](path).send({ name: 'x' }), 401, 'unauthenticated');
      }
      expect((await stored(id)).members).toHaveLength(2);
    });
  });
});
