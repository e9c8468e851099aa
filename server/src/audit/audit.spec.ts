import { AgentEvents, AuditEvent, AuditEventSchema, AuditPageSchema } from '@kapitan/shared';
import { createHash } from 'node:crypto';
import { randomUUID } from 'node:crypto';
import { FACTS, projectWithMachine, tickAt } from '../testing/schedules';
import { bearer, createTestApp, describeBothDatabases, expectError, expectValidationError, signupUser, TestApp, waitFor } from '../testing/test-app';
import { closeSockets, connectAgent, emitWithAck, enrolMachine, helloBody, setupProject } from '../testing/sockets';
import { SchedulerService } from '../common/scheduler.service';
import { AuditEventEntity } from './audit-event.entity';
import { AuditService } from './audit.service';

/** The smallest archive the image check accepts: one `manifest.json` entry, as `docker save` writes it. */
function tarball(content: Buffer): Buffer {
  const header = Buffer.alloc(512);
  header.write('manifest.json', 0);
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(content.length.toString(8).padStart(11, '0') + '\0', 124);
  header.write('00000000000\0', 136);
  header.write('0', 156);
  header.write('ustar\x0000', 257);
  header.fill(' ', 148, 156);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  const body = Buffer.alloc(Math.ceil(content.length / 512) * 512);
  content.copy(body);
  return Buffer.concat([header, body, Buffer.alloc(1024)]);
}

type Person = Awaited<ReturnType<typeof signupUser>>;

/**
 * The audit log against the real app and database: each action family
 * writes exactly one event naming who, from where and in which project;
 * refused requests write nothing (a refused log-in is the one failure row);
 * the log cannot be changed through the API; filters, pages and the export;
 * and another project's events stay invisible.
 */
describeBothDatabases('audit', (database) => {
  let t: TestApp;
  let admin: Person;
  let owner: Person;
  let viewer: Person;
  let stranger: Person;
  let projectId: string;
  let machineId: string;

  /** The events written while `fn` ran, oldest first, as the API shows them (specs here run one at a time; nothing else writes events). */
  async function written(fn: () => Promise<unknown>): Promise<AuditEvent[]> {
    const before = Number((await t.db.query('SELECT MAX(seq) AS m FROM audit_events'))[0].m ?? 0);
    await fn();
    const rows: { seq: number; projectId: string | null }[] = await t.db.query('SELECT seq, projectId FROM audit_events WHERE seq > ? ORDER BY seq', [before]);
    const found: AuditEvent[] = [];
    for (const { seq, projectId } of rows) {
      const page = await t.app.get(AuditService).page(projectId ? { projectId } : { instance: true }, { cursor: String(Number(seq) + 1), limit: 1 });
      found.push(AuditEventSchema.parse(page.events[0]));
    }
    return found;
  }
  const one = async (fn: () => Promise<unknown>): Promise<AuditEvent> => {
    const events = await written(fn);
    expect(events.map((e) => e.action)).toHaveLength(1);
    return events[0];
  };
  const ADDR = '203.0.113.7';
  const as = (p: Person) => ({
    get: (path: string) => t.http.get(path).set(bearer(p.token)).set('X-Forwarded-For', ADDR),
    post: (path: string, body?: object) => t.http.post(path).set(bearer(p.token)).set('X-Forwarded-For', ADDR).send(body),
    patch: (path: string, body?: object) => t.http.patch(path).set(bearer(p.token)).set('X-Forwarded-For', ADDR).send(body),
    put: (path: string, body?: object) => t.http.put(path).set(bearer(p.token)).set('X-Forwarded-For', ADDR).send(body),
    delete: (path: string) => t.http.delete(path).set(bearer(p.token)).set('X-Forwarded-For', ADDR),
  });
  const byUser = (p: Person) => ({ type: 'user', userId: p.user.id, email: p.email, tokenId: null, tokenName: null, machineId: null });

  beforeAll(async () => {
    t = await createTestApp({ database });
    admin = await signupUser(t.http); // the first user is the instance admin
    owner = await signupUser(t.http);
    viewer = await signupUser(t.http);
    stranger = await signupUser(t.http);
    ({ projectId, machineId } = await projectWithMachine(t, owner.token));
    await as(owner).post(`/api/projects/${projectId}/members`, { email: viewer.email, role: 'viewer' }).expect(201);
  });
  afterAll(async () => {
    closeSockets();
    await t?.close();
  });

  describe('what is recorded', () => {
    it('log-in: success names the user and the address TRUST_PROXY resolves', async () => {
      const e = await one(() => t.http.post('/api/auth/login').set('X-Forwarded-For', ADDR).send({ email: owner.email, password: owner.password }).expect(200));
      expect(e).toMatchObject({ action: 'auth.login', actor: byUser(owner), projectId: null, address: ADDR });
      expect(e.requestId).toEqual(expect.any(String));
    });

    it('log-in: a wrong password is one failure row, anonymous, naming the email tried; a malformed body records nothing', async () => {
      const e = await one(() => t.http.post('/api/auth/login').set('X-Forwarded-For', '198.51.100.9').send({ email: owner.email, password: 'wrong-password-1' }).expect(401));
      expect(e).toMatchObject({ action: 'auth.login_failed', actor: { type: 'anonymous', userId: null }, address: '198.51.100.9', details: { email: owner.email, reason: 'bad_credentials' } });
      expect(JSON.stringify(e)).not.toContain('wrong-password-1');
      expect(await written(async () => expectValidationError(await t.http.post('/api/auth/login').send({ email: 'not-an-email', password: 'x' }), 'email'))).toEqual([]);
    });

    it('sign-up names the new user', async () => {
      let created: Person | undefined;
      const e = await one(async () => (created = await signupUser(t.http)));
      expect(e).toMatchObject({ action: 'auth.signup', actor: byUser(created!), details: { email: created!.email } });
    });

    it('invitations: instance-wide, by the admin; a refused settings change records nothing', async () => {
      const inv = await one(() => as(admin).post('/api/admin/invitations', {}).expect(201));
      expect(inv).toMatchObject({ action: 'invitation.create', actor: byUser(admin), projectId: null });
      expect(JSON.stringify(inv)).not.toMatch(/"token"/);
      const rev = await one(() => as(admin).delete(`/api/admin/invitations/${inv.details.invitationId as string}`).expect(204));
      expect(rev).toMatchObject({ action: 'invitation.revoke', details: { invitationId: inv.details.invitationId } });
      // KAPITAN_SIGNUP pins the mode in the test app, so the setting is refused (409): a refusal, which records nothing.
      expect(await written(async () => expectError(await as(admin).patch('/api/admin/settings', { signupMode: 'invite' }), 409))).toEqual([]);
    });

    it('project create, update, delete; the events outlive the project', async () => {
      let id = '';
      const c = await one(async () => (id = (await as(owner).post('/api/projects', { name: 'short-lived' }).expect(201)).body.id));
      expect(c).toMatchObject({ action: 'project.create', projectId: id, actor: byUser(owner), details: { name: 'short-lived' } });
      const u = await one(() => as(owner).patch(`/api/projects/${id}`, { description: 'x' }).expect(200));
      expect(u).toMatchObject({ action: 'project.update', projectId: id, details: { fields: ['description'] } });
      expect(await one(() => as(owner).delete(`/api/projects/${id}`).expect(204))).toMatchObject({ action: 'project.delete', projectId: id });
      const kept = await t.app.get(AuditService).page({ projectId: id }, {});
      expect(kept.events.map((e) => e.action)).toEqual(['project.delete', 'project.update', 'project.create']);
    });

    it('members: add, update, remove', async () => {
      const extra = await signupUser(t.http);
      expect(await one(() => as(owner).post(`/api/projects/${projectId}/members`, { email: extra.email, role: 'viewer' }).expect(201))).toMatchObject({
        action: 'member.add',
        projectId,
        details: { email: extra.email, role: 'viewer' },
      });
      expect(await one(() => as(owner).patch(`/api/projects/${projectId}/members/${extra.user.id}`, { role: 'operator' }).expect(200))).toMatchObject({
        action: 'member.update',
        details: { userId: extra.user.id, role: 'operator' },
      });
      expect(await one(() => as(owner).delete(`/api/projects/${projectId}/members/${extra.user.id}`).expect(204))).toMatchObject({ action: 'member.remove', details: { userId: extra.user.id } });
    });

    it('API tokens: create and revoke land in the token’s project; an API token acting is named by id and name', async () => {
      let token = '';
      let tokenId = '';
      const c = await one(async () => {
        const body = (await as(owner).post('/api/tokens', { name: 'ci', projectId, role: 'owner' }).expect(201)).body;
        token = body.token;
        tokenId = body.id;
      });
      expect(c).toMatchObject({ action: 'api_token.create', projectId, details: { tokenId, name: 'ci', role: 'owner' } });
      expect(JSON.stringify(c)).not.toContain(token);
      const viaToken = await one(() => t.http.post(`/api/projects/${projectId}/secrets`).set(bearer(token)).set('X-Forwarded-For', ADDR).send({ name: 'BY_TOKEN', value: 'tok-val' }).expect(201));
      expect(viaToken.actor).toEqual({ type: 'api_token', userId: owner.user.id, email: owner.email, tokenId, tokenName: 'ci', machineId: null });
      // Owner tokens may read the log.
      await t.http.get(`/api/projects/${projectId}/audit`).set(bearer(token)).expect(200);
      expect(await one(() => as(owner).delete(`/api/tokens/${tokenId}`).expect(204))).toMatchObject({ action: 'api_token.revoke', projectId, details: { tokenId } });
    });

    it('enrolment tokens and machines: a machine enrolling is the actor of its enrolment', async () => {
      let enrolToken = '';
      const c = await one(async () => (enrolToken = (await as(owner).post(`/api/projects/${projectId}/enrolment-tokens`, { maxUses: 1 }).expect(201)).body.token));
      expect(c).toMatchObject({ action: 'enrolment_token.create', projectId, details: { maxUses: 1 } });
      expect(JSON.stringify(c)).not.toContain(enrolToken);
      let m = '';
      const enrol = await one(async () => (m = (await t.http.post('/api/agent/enrol').set('X-Forwarded-For', ADDR).send({ token: enrolToken, facts: FACTS }).expect(201)).body.machineId));
      expect(enrol).toMatchObject({ action: 'machine.enrol', projectId, machineId: m, address: ADDR, actor: { type: 'machine', machineId: m, userId: null }, details: { hostname: FACTS.hostname } });
      expect(JSON.stringify(enrol)).not.toContain(enrolToken);
      expect(await one(() => as(owner).patch(`/api/projects/${projectId}/machines/${m}`, { labels: { zone: 'a' } }).expect(200))).toMatchObject({ action: 'machine.update', machineId: m, details: { labels: ['zone'] } });
      expect(await one(() => as(owner).delete(`/api/projects/${projectId}/machines/${m}`).expect(204))).toMatchObject({ action: 'machine.revoke', machineId: m });
      expect(await one(() => as(owner).delete(`/api/projects/${projectId}/enrolment-tokens/${c.details.tokenId as string}`).expect(204))).toMatchObject({ action: 'enrolment_token.revoke' });
    });

    it('secrets: names only, never values', async () => {
      const v1 = `s-${randomUUID()}`;
      const v2 = `s-${randomUUID()}`;
      const events = [
        await one(() => as(owner).post(`/api/projects/${projectId}/secrets`, { name: 'DB_PASS', value: v1 }).expect(201)),
        await one(() => as(owner).put(`/api/projects/${projectId}/secrets/DB_PASS`, { value: v2 }).expect(200)),
        await one(() => as(owner).delete(`/api/projects/${projectId}/secrets/DB_PASS`).expect(204)),
      ];
      expect(events.map((e) => [e.action, e.details])).toEqual([
        ['secret.create', { name: 'DB_PASS' }],
        ['secret.update', { name: 'DB_PASS' }],
        ['secret.delete', { name: 'DB_PASS' }],
      ]);
      const raw = JSON.stringify(await t.db.query('SELECT * FROM audit_events'));
      expect(raw).not.toContain(v1);
      expect(raw).not.toContain(v2);
    });

    it('runs and cancels, by machine', async () => {
      let executionId = '';
      const run = await one(async () => (executionId = (await as(owner).post(`/api/projects/${projectId}/executions`, { script: 'true', targets: { machineIds: [machineId] } }).expect(201)).body.executions[0].id));
      expect(run).toMatchObject({ action: 'run.create', projectId, machineId, details: { executionIds: [executionId], machineIds: [machineId] } });
      expect(await one(() => as(owner).post(`/api/executions/${executionId}/cancel`).expect(202))).toMatchObject({ action: 'run.cancel', projectId, machineId, details: { executionId } });
    });

    it('schedules: create, update, pause, resume, delete (a route named by the schedule still lands in its project)', async () => {
      let id = '';
      const c = await one(async () => (id = (await as(owner).post(`/api/projects/${projectId}/schedules`, { name: 'nightly', script: 'true', targets: { all: true }, cron: '0 3 * * *' }).expect(201)).body.id));
      expect(c).toMatchObject({ action: 'schedule.create', projectId, details: { scheduleId: id, name: 'nightly' } });
      const rest = [
        await one(() => as(owner).patch(`/api/schedules/${id}`, { name: 'renamed' }).expect(200)),
        await one(() => as(owner).post(`/api/schedules/${id}/pause`).expect(200)),
        await one(() => as(owner).post(`/api/schedules/${id}/resume`).expect(200)),
        await one(() => as(owner).delete(`/api/schedules/${id}`).expect(204)),
      ];
      expect(rest.map((e) => [e.action, e.projectId, e.details.scheduleId])).toEqual([
        ['schedule.update', projectId, id],
        ['schedule.pause', projectId, id],
        ['schedule.resume', projectId, id],
        ['schedule.delete', projectId, id],
      ]);
    });

    it('a schedule firing: one schedule.fire on behalf of its creator, no address', async () => {
      const runAt = new Date(Math.ceil((Date.now() + 3600_000) / 1000) * 1000);
      const id = (await as(owner).post(`/api/projects/${projectId}/schedules`, { name: 'once', script: 'true', targets: { machineIds: [machineId] }, runAt: runAt.toISOString() }).expect(201)).body.id as string;
      const fired = await written(async () => {
        await tickAt(t, new Date(runAt.getTime() + 100));
        await waitFor('the firing to be recorded', async () => Number((await t.db.query("SELECT COUNT(*) AS n FROM audit_events WHERE action = 'schedule.fire'"))[0].n) > 0 || undefined, 30_000);
        await tickAt(t, new Date(runAt.getTime() + 5_000)); // a later pass fires nothing more
      });
      expect(fired).toHaveLength(1);
      expect(fired[0]).toMatchObject({ action: 'schedule.fire', actor: byUser(owner), projectId, machineId, address: null, details: { scheduleId: id, name: 'once', fireAt: runAt.toISOString(), machineIds: [machineId] } });
      await as(owner).delete(`/api/schedules/${id}`).expect(204);
    });

    it('files: upload and delete; deploys', async () => {
      let fileId = '';
      const up = await one(
        async () =>
          (fileId = (await as(owner).post(`/api/projects/${projectId}/files?kind=file&name=a.txt`).set('Content-Type', 'application/octet-stream').send(Buffer.from('hello')).expect(201)).body.id),
      );
      expect(up).toMatchObject({ action: 'file.upload', projectId, details: { fileId, name: 'a.txt', kind: 'file', size: 5 } });
      const dep = await one(() => as(owner).post(`/api/projects/${projectId}/deploys`, { fileId, targets: { all: true }, path: '/tmp/kapitan-audit-spec.txt' }).expect(201));
      expect(dep).toMatchObject({ action: 'deploy.create', projectId, details: { fileId, path: '/tmp/kapitan-audit-spec.txt' } });
      const other = (await as(owner).post(`/api/projects/${projectId}/files?kind=file&name=b.txt`).set('Content-Type', 'application/octet-stream').send(Buffer.from('bye')).expect(201)).body.id;
      expect(await one(() => as(owner).delete(`/api/files/${other}`).expect(204))).toMatchObject({ action: 'file.delete', projectId, details: { fileId: other } });
    });

    it('resumable uploads: one file.upload when complete, nothing for the chunks; distributions', async () => {
      const image = tarball(Buffer.from('[]'));
      const sha256 = createHash('sha256').update(image).digest('hex');
      let fileId = '';
      const events = await written(async () => {
        const u = (await as(owner).post(`/api/projects/${projectId}/uploads`, { kind: 'image', name: 'img.tar', size: image.length }).expect(201)).body;
        await as(owner).put(`/api/uploads/${u.id}?offset=0`).set('Content-Type', 'application/octet-stream').send(image).expect(200);
        fileId = (await as(owner).post(`/api/uploads/${u.id}/complete`, { sha256 }).expect(201)).body.id;
      });
      expect(events.map((e) => [e.action, e.details.fileId, e.details.kind, e.details.sha256])).toEqual([['file.upload', fileId, 'image', sha256]]);
      const d = await one(() => as(owner).post(`/api/projects/${projectId}/distributions`, { fileId, targets: { all: true } }).expect(201));
      expect(d).toMatchObject({ action: 'distribution.create', projectId, details: { fileId, fileName: 'img.tar' } });
    });

    it('container create and actions, on the machine', async () => {
      const p = await setupProject(t, 'containers');
      const m = await enrolMachine(t, p);
      const agent = await connectAgent(t.url, m.credential);
      expect((await emitWithAck(agent, AgentEvents.hello, helloBody())).ok).toBe(true);
      const cid = 'c'.repeat(64);
      const snapshot = {
        snapshotId: randomUUID(),
        last: true,
        containers: [
          {
            id: cid, name: 'web', image: 'kapitan-test/busybox:1', imageId: 'sha256:' + 'e'.repeat(64), state: 'running', status: 'Up', health: 'none',
            ports: [], labels: {}, createdAt: '2026-12-01T10:00:00.000Z', startedAt: '2026-12-01T10:00:01.000Z', finishedAt: null, exitCode: null, restartCount: 0,
          },
        ],
      };
      expect(await emitWithAck(agent, AgentEvents.containersSnapshot, snapshot)).toEqual({ ok: true });
      const owns = { token: p.owner.token } as Person;
      const created = await one(() => as(owns).post(`/api/machines/${m.machineId}/containers`, { image: 'kapitan-test/busybox:1', name: 'api', env: { PASSWORD: 'container-env-secret' } }).expect(202));
      expect(created).toMatchObject({ action: 'container.create', projectId: p.projectId, machineId: m.machineId, details: { image: 'kapitan-test/busybox:1', name: 'api' } });
      expect(JSON.stringify(created)).not.toContain('container-env-secret');
      const stop = await one(() => as(owns).post(`/api/machines/${m.machineId}/containers/${cid}/stop`).expect(202));
      expect(stop).toMatchObject({ action: 'container.action', projectId: p.projectId, machineId: m.machineId, details: { containerId: cid, action: 'stop' } });
      expect(await written(async () => expectError(await as(owns).post(`/api/machines/${m.machineId}/containers/${'9'.repeat(64)}/stop`), 404))).toEqual([]);
    });

    it('log-out', async () => {
      const s = await signupUser(t.http);
      expect(await one(() => as(s).post('/api/auth/logout').expect(204))).toMatchObject({ action: 'auth.logout', actor: byUser(s) });
    });
  });

  describe('what is not recorded', () => {
    it('bad input, missing permission and strangers write nothing', async () => {
      const refused = await written(async () => {
        expectValidationError(await as(owner).post(`/api/projects/${projectId}/secrets`, { name: 'bad name!', value: 'x' }), 'name');
        expectError(await as(viewer).post(`/api/projects/${projectId}/secrets`, { name: 'OK_NAME', value: 'x' }), 403);
        expectError(await as(stranger).delete(`/api/projects/${projectId}`), 404);
        expectError(await as(owner).delete(`/api/schedules/${randomUUID()}`), 404);
        expectError(await t.http.post('/api/projects').send({ name: 'anon' }), 401);
      });
      expect(refused).toEqual([]);
    });
  });

  describe('reading', () => {
    const list = (p: Person, q = '', project = projectId) => as(p).get(`/api/projects/${project}/audit${q}`);

    it('owners read their project; viewers and operators get 403, strangers 404, and no other project leaks in', async () => {
      const page = AuditPageSchema.parse((await list(owner).expect(200)).body);
      expect(page.events.length).toBeGreaterThan(0);
      expect(page.events.every((e) => e.projectId === projectId)).toBe(true);
      expectError(await list(viewer), 403);
      expectError(await list(stranger), 404);
      const operator = await signupUser(t.http);
      await as(owner).post(`/api/projects/${projectId}/members`, { email: operator.email, role: 'operator' }).expect(201);
      expectError(await list(operator), 403);
      const operatorToken = (await as(owner).post('/api/tokens', { name: 'op', projectId, role: 'operator' }).expect(201)).body.token as string;
      expectError(await t.http.get(`/api/projects/${projectId}/audit`).set(bearer(operatorToken)), 403);
      expectError(await as(stranger).get(`/api/projects/${projectId}/audit/export`), 404);
      const theirs = (await as(stranger).post('/api/projects', { name: 'theirs' }).expect(201)).body.id;
      const mine = (await list(owner, '?limit=200').expect(200)).body as { events: AuditEvent[] };
      expect(mine.events.some((e) => e.projectId === theirs)).toBe(false);
      expectError(await list(owner, '', theirs), 404);
    });

    it('instance events for the admin only', async () => {
      const page = AuditPageSchema.parse((await as(admin).get('/api/admin/audit?action=auth.login').expect(200)).body);
      expect(page.events.length).toBeGreaterThan(0);
      expect(page.events.every((e) => e.action === 'auth.login' && e.projectId === null)).toBe(true);
      expectError(await as(owner).get('/api/admin/audit'), 403);
    });

    it('filters: action, actor, machine, from/to; bad filters are 400 naming the field', async () => {
      const secrets = (await list(owner, '?action=secret.create').expect(200)).body.events as AuditEvent[];
      expect(secrets.length).toBeGreaterThan(0);
      expect(secrets.every((e) => e.action === 'secret.create')).toBe(true);
      const byMachine = (await list(owner, `?machine=${machineId}`).expect(200)).body.events as AuditEvent[];
      expect(byMachine.map((e) => e.action).sort()).toEqual(['machine.enrol', 'run.cancel', 'run.create', 'schedule.fire']);
      const actor = (await list(owner, `?actor=${owner.user.id}&limit=200`).expect(200)).body.events as AuditEvent[];
      expect(actor.length).toBeGreaterThan(0);
      expect(actor.every((e) => e.actor.userId === owner.user.id)).toBe(true);
      const future = new Date(Date.now() + 3600_000).toISOString();
      expect((await list(owner, `?from=${encodeURIComponent(future)}`).expect(200)).body.events).toEqual([]);
      const all = (await list(owner, '?limit=200').expect(200)).body.events as AuditEvent[];
      expect(((await list(owner, `?to=${encodeURIComponent(future)}&limit=200`).expect(200)).body.events as AuditEvent[]).length).toBe(all.length);
      expectValidationError(await list(owner, '?action=nope'), 'action');
      expectValidationError(await list(owner, '?actor=me'), 'actor');
      expectValidationError(await list(owner, '?limit=0'), 'limit');
      expectValidationError(await list(owner, '?cursor=abc'), 'cursor');
      expectValidationError(await list(owner, '?from=yesterday'), 'from');
    });

    it('cursor pages cover every event once, newest first', async () => {
      const all = (await list(owner, '?limit=200').expect(200)).body.events as AuditEvent[];
      const paged: AuditEvent[] = [];
      let cursor: string | null = null;
      do {
        const q: string = `?limit=3${cursor ? `&cursor=${cursor}` : ''}`;
        const page = AuditPageSchema.parse((await list(owner, q).expect(200)).body);
        expect(page.events.length).toBeLessThanOrEqual(3);
        paged.push(...page.events);
        cursor = page.nextCursor;
      } while (cursor);
      expect(paged.map((e) => e.id)).toEqual(all.map((e) => e.id));
      const ids = paged.map((e) => Number(e.id));
      expect([...ids].sort((a, b) => b - a)).toEqual(ids);
    });

    it('export: NDJSON, every line a valid event, filters apply', async () => {
      const res = await as(owner).get(`/api/projects/${projectId}/audit/export`).buffer(true).parse((r, cb) => {
        let s = '';
        r.on('data', (d: Buffer) => (s += d.toString()));
        r.on('end', () => cb(null, s));
      });
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/x-ndjson/);
      const text = res.body as string;
      expect(text.endsWith('\n')).toBe(true);
      const lines = text.trimEnd().split('\n').map((l) => AuditEventSchema.parse(JSON.parse(l)));
      const all = (await list(owner, '?limit=200').expect(200)).body.events as AuditEvent[];
      expect(lines.map((e) => e.id)).toEqual(all.map((e) => e.id));
      const filtered = await as(owner).get(`/api/projects/${projectId}/audit/export?action=run.create`).buffer(true).parse((r, cb) => {
        let s = '';
        r.on('data', (d: Buffer) => (s += d.toString()));
        r.on('end', () => cb(null, s));
      });
      expect((filtered.body as string).trimEnd().split('\n').map((l) => JSON.parse(l).action)).toEqual(['run.create']);
      expectError(await as(viewer).get(`/api/projects/${projectId}/audit/export`), 403);
    });

    it('the API cannot edit or delete events', async () => {
      const [e] = (await list(owner, '?limit=1').expect(200)).body.events as AuditEvent[];
      for (const path of [`/api/projects/${projectId}/audit`, `/api/projects/${projectId}/audit/${e.id}`, '/api/admin/audit', `/api/admin/audit/${e.id}`]) {
        for (const method of ['put', 'patch', 'delete', 'post'] as const) {
          const res = await t.http[method](path).set(bearer(owner.token)).send({ action: 'auth.login' });
          expect({ method, path, status: res.status }).toEqual({ method, path, status: 404 });
        }
      }
      const after = (await list(owner, '?limit=1').expect(200)).body.events as AuditEvent[];
      expect(after[0]).toEqual(e);
    });
  });

  describe('retention', () => {
    it('prune drops only events older than the retention', async () => {
      const svc = t.app.get(AuditService);
      const total = async (): Promise<number> => Number((await t.db.query('SELECT COUNT(*) AS n FROM audit_events'))[0].n);
      const n = await total();
      expect(await svc.prune(1)).toBe(0);
      expect(await total()).toBe(n);
      // Seen from two days on, every event so far is older than a day.
      expect(await svc.prune(1, new Date(Date.now() + 2 * 86_400_000))).toBe(n);
      expect(await total()).toBe(0);
    });
  });

  describe('instance settings and retention, on an app with its own settings', () => {
    let u: TestApp;
    afterAll(() => u?.close());

    it('an admin changing the sign-up mode is recorded; with a retention set, the hourly job prunes what is older', async () => {
      u = await createTestApp({ database, env: { KAPITAN_SIGNUP: undefined, KAPITAN_AUDIT_RETENTION_DAYS: '2' } });
      const a = await signupUser(u.http);
      await u.http.patch('/api/admin/settings').set(bearer(a.token)).send({ signupMode: 'invite' }).expect(200);
      const events = (await u.http.get('/api/admin/audit').set(bearer(a.token)).expect(200)).body.events as AuditEvent[];
      expect(events.map((e) => [e.action, e.details])).toEqual([
        ['instance.settings_update', { signupMode: 'invite' }],
        ['auth.signup', { email: a.email }],
      ]);
      // Age the sign-up as only someone with database access could (T65), then let the job run.
      await u.db.getRepository(AuditEventEntity).update({ action: 'auth.signup' }, { at: new Date(Date.now() - 3 * 86_400_000) });
      await u.app.get(SchedulerService).runNow('audit-retention');
      const kept = (await u.http.get('/api/admin/audit').set(bearer(a.token)).expect(200)).body.events as AuditEvent[];
      expect(kept.map((e) => e.action)).toEqual(['instance.settings_update']);
    });
  });
});
