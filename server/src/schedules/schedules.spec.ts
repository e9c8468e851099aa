/**
 * Schedules against the real app and database, both kinds: the REST
 * surface with its bad input (400 naming the field, nothing stored) and its
 * roles, and firing driven tick by tick with the node's clock moved
 * (ScheduleClock), so slots, missed runs and overlaps are exact rather than
 * waited for. Several nodes on one database: schedules-nodes.spec.ts.
 */
import { type Occurrence, type Schedule } from '@kapitan/shared';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  bearer,
  createScratchDatabase,
  createTestApp,
  describeBothDatabases,
  expectError,
  expectValidationError,
  signupUser,
  TestApp,
  TestDatabaseKind,
  TestEnv,
  waitFor,
} from '../testing/test-app';
import { SchedulerService } from '../common/scheduler.service';
import { ScheduleClock } from './schedule-clock';
import { ScheduleFiring } from './schedule-firing.service';
import { SCHEDULES_JOB } from './schedules.service';
import { projectWithMachine, tickAt } from '../testing/schedules';

const slotAligned = (ms: number, stepMs: number): Date => new Date(Math.ceil(ms / stepMs) * stepMs);

describeBothDatabases('schedules', (database) => {
  let t: TestApp;
  let owner: string;
  let viewer: string;
  let stranger: string;
  let projectId: string;
  let machineId: string;
  let otherProjectId: string;

  const count = async (table: string, where = '1=1', params: unknown[] = []): Promise<number> =>
    Number((await t.db.query(`SELECT COUNT(*) AS n FROM ${table} WHERE ${where}`, params))[0].n);
  const create = (body: Record<string, unknown>, who = owner, project = projectId) => t.http.post(`/api/projects/${project}/schedules`).set(bearer(who)).send(body);
  const base = () => ({ name: 'nightly', script: 'echo hi', targets: { all: true } });
  const history = async (id: string): Promise<Occurrence[]> => (await t.http.get(`/api/schedules/${id}/occurrences`).set(bearer(owner)).expect(200)).body;

  beforeAll(async () => {
    t = await createTestApp({ database });
    owner = (await signupUser(t.http)).token;
    stranger = (await signupUser(t.http)).token;
    const v = await signupUser(t.http);
    viewer = v.token;
    ({ projectId, machineId } = await projectWithMachine(t, owner));
    await t.http.post(`/api/projects/${projectId}/members`).set(bearer(owner)).send({ email: v.email, role: 'viewer' }).expect(201);
    otherProjectId = (await projectWithMachine(t, stranger)).projectId;
    await t.http.post(`/api/projects/${otherProjectId}/secrets`).set(bearer(stranger)).send({ name: 'THEIRS', value: 'their-secret-value' }).expect(201);
  });
  afterAll(() => t?.close());

  describe('REST', () => {
    it('creates a cron schedule with its zone, next fire times and no occurrence yet; lists and reads it', async () => {
      const res = await create({ ...base(), cron: '0 3 * * *', timezone: 'Europe/Berlin', env: { A: '1' } }).expect(201);
      const s = res.body as Schedule;
      expect(s).toMatchObject({ name: 'nightly', cron: '0 3 * * *', timezone: 'Europe/Berlin', enabled: true, missedRunPolicy: 'skip', overlapPolicy: 'skip', lastOccurrence: null });
      expect(s.run).toEqual({ script: 'echo hi', targets: { all: true }, env: { A: '1' } });
      expect(s.nextRuns).toHaveLength(5);
      expect(s.nextRunAt).toBe(s.nextRuns[0]);
      // 03:00 in Berlin is 01:00 or 02:00 UTC depending on the season.
      for (const r of s.nextRuns) expect(['01:00:00', '02:00:00']).toContain(r.slice(11, 19));
      const list = await t.http.get(`/api/projects/${projectId}/schedules`).set(bearer(viewer)).expect(200);
      expect(list.body.map((x: Schedule) => x.id)).toContain(s.id);
      await t.http.get(`/api/schedules/${s.id}`).set(bearer(viewer)).expect(200);
    });

    it('a one-shot: nextRunAt is its time; timezone defaults to UTC', async () => {
      const runAt = new Date(Date.now() + 3600_000).toISOString();
      const s = (await create({ ...base(), runAt }).expect(201)).body as Schedule;
      expect(s.nextRunAt).toBe(runAt);
      expect(s.nextRuns).toEqual([runAt]);
      expect(s.cron).toBeNull();
    });

    it('updates by merging, pauses and resumes; a timing change counts from now', async () => {
      const s = (await create({ ...base(), cron: '0 3 * * *' }).expect(201)).body as Schedule;
      const patched = (await t.http.patch(`/api/schedules/${s.id}`).set(bearer(owner)).send({ name: 'renamed', cron: '*/10 * * * *', overlapPolicy: 'queue', queueLimit: 3 }).expect(200)).body as Schedule;
      expect(patched).toMatchObject({ name: 'renamed', cron: '*/10 * * * *', overlapPolicy: 'queue', queueLimit: 3 });
      expect(patched.run.script).toBe('echo hi');
      expect(new Date(patched.nextRunAt as string).getUTCMinutes() % 10).toBe(0);
      const paused = (await t.http.post(`/api/schedules/${s.id}/pause`).set(bearer(owner)).expect(200)).body as Schedule;
      expect(paused.enabled).toBe(false);
      expect(paused.nextRunAt).toBeNull();
      expect(paused.nextRuns).toEqual([]);
      const resumed = (await t.http.post(`/api/schedules/${s.id}/resume`).set(bearer(owner)).expect(200)).body as Schedule;
      expect(resumed.enabled).toBe(true);
      expect(resumed.nextRunAt).not.toBeNull();
      // Switching to a one-shot: cron cleared, runAt set, the zone goes with cron.
      const runAt = new Date(Date.now() + 600_000).toISOString();
      const once = (await t.http.patch(`/api/schedules/${s.id}`).set(bearer(owner)).send({ cron: null, runAt }).expect(200)).body as Schedule;
      expect(once).toMatchObject({ cron: null, runAt, nextRunAt: runAt });
      await t.http.delete(`/api/schedules/${s.id}`).set(bearer(owner)).expect(204);
      await t.http.get(`/api/schedules/${s.id}`).set(bearer(owner)).expect(404);
    });

    it('viewers read but cannot create, change, pause or delete (403); strangers get 404 everywhere', async () => {
      const s = (await create({ ...base(), cron: '0 3 * * *' }).expect(201)).body as Schedule;
      const before = await count('schedules');
      expectError(await create({ ...base(), cron: '0 3 * * *' }, viewer), 403, 'forbidden');
      expectError(await t.http.patch(`/api/schedules/${s.id}`).set(bearer(viewer)).send({ name: 'x' }), 403);
      expectError(await t.http.post(`/api/schedules/${s.id}/pause`).set(bearer(viewer)), 403);
      expectError(await t.http.delete(`/api/schedules/${s.id}`).set(bearer(viewer)), 403);
      await t.http.get(`/api/schedules/${s.id}/occurrences`).set(bearer(viewer)).expect(200);
      expectError(await create({ ...base(), cron: '0 3 * * *' }, stranger), 404, 'not_found');
      expectError(await t.http.get(`/api/projects/${projectId}/schedules`).set(bearer(stranger)), 404);
      for (const req of [
        t.http.get(`/api/schedules/${s.id}`),
        t.http.patch(`/api/schedules/${s.id}`).send({ name: 'x' }),
        t.http.post(`/api/schedules/${s.id}/pause`),
        t.http.post(`/api/schedules/${s.id}/resume`),
        t.http.delete(`/api/schedules/${s.id}`),
        t.http.get(`/api/schedules/${s.id}/occurrences`),
      ]) {
        expectError(await req.set(bearer(stranger)), 404, 'not_found');
      }
      expect(await count('schedules')).toBe(before);
      const after = (await t.http.get(`/api/schedules/${s.id}`).set(bearer(owner)).expect(200)).body as Schedule;
      expect(after.name).toBe(s.name);
      expect(after.enabled).toBe(true);
    });

    it('an API token: viewer-role reads and cannot create; scoped to another project → 404', async () => {
      const mint = async (role: string, project: string) =>
        (await t.http.post('/api/tokens').set(bearer(owner)).send({ name: `t-${role}`, projectId: project, role }).expect(201)).body.token as string;
      const viewerToken = await mint('viewer', projectId);
      await t.http.get(`/api/projects/${projectId}/schedules`).set(bearer(viewerToken)).expect(200);
      expectError(await create({ ...base(), cron: '0 3 * * *' }, viewerToken), 403);
      const elsewhere = (await t.http.post('/api/projects').set(bearer(owner)).send({ name: 'q' }).expect(201)).body.id;
      const scoped = await mint('operator', elsewhere);
      expectError(await create({ ...base(), cron: '0 3 * * *' }, scoped), 404);
      const operatorToken = await mint('operator', projectId);
      await create({ ...base(), cron: '0 3 * * *' }, operatorToken).expect(201);
    });

    describe('bad input → 400 naming the field, nothing stored', () => {
      const cases: [string, () => Record<string, unknown>, string][] = [
        ['a cron expression that is not one', () => ({ ...base(), cron: 'every day' }), 'cron'],
        ['a cron field out of range', () => ({ ...base(), cron: '61 * * * *' }), 'cron'],
        ['a cron that fires every second', () => ({ ...base(), cron: '* * * * * *' }), 'cron'],
        ['a cron that never fires (30 February)', () => ({ ...base(), cron: '0 0 30 2 *' }), 'cron'],
        ['an unknown time zone', () => ({ ...base(), cron: '0 3 * * *', timezone: 'Mars/Olympus' }), 'timezone'],
        ['cron and runAt both', () => ({ ...base(), cron: '0 3 * * *', runAt: new Date(Date.now() + 60_000).toISOString() }), 'runAt'],
        ['neither cron nor runAt', () => base(), 'cron'],
        ['a one-shot in the past', () => ({ ...base(), runAt: new Date(Date.now() - 60_000).toISOString() }), 'runAt'],
        ['a one-shot too far ahead', () => ({ ...base(), runAt: '2999-01-01T00:00:00Z' }), 'runAt'],
        ['a one-shot that is not a date', () => ({ ...base(), runAt: 'tomorrow' }), 'runAt'],
        ['a time zone with a one-shot', () => ({ ...base(), runAt: new Date(Date.now() + 60_000).toISOString(), timezone: 'UTC' }), 'timezone'],
        ['an unknown machine', () => ({ ...base(), cron: '0 3 * * *', targets: { machineIds: ['00000000-0000-4000-8000-000000000000'] } }), 'targets.machineIds'],
        ["another project's secret", () => ({ ...base(), cron: '0 3 * * *', secrets: ['THEIRS'] }), 'secrets'],
        ['a secret sharing an env name', () => ({ ...base(), cron: '0 3 * * *', env: { TOKEN: 'x' }, secrets: ['TOKEN'] }), 'secrets'],
        ['a 10,000-character name', () => ({ ...base(), name: 'n'.repeat(10_000), cron: '0 3 * * *' }), 'name'],
        ['a name with NUL', () => ({ ...base(), name: 'a\0b', cron: '0 3 * * *' }), 'name'],
        ['an empty name', () => ({ ...base(), name: '   ', cron: '0 3 * * *' }), 'name'],
        ['a cron with NUL', () => ({ ...base(), cron: '0 3 * * *\0' }), 'cron'],
        ['an arg with NUL', () => ({ ...base(), cron: '0 3 * * *', args: ['a\0'] }), 'args.0'],
        ['a target list over the bound', () => ({ ...base(), cron: '0 3 * * *', targets: { machineIds: Array.from({ length: 1001 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`) } }), 'targets.machineIds'],
        ['no targets', () => ({ name: 'x', script: 'true', cron: '0 3 * * *' }), 'targets'],
        ['no script', () => ({ name: 'x', targets: { all: true }, cron: '0 3 * * *' }), 'script'],
        ['an unknown overlap policy', () => ({ ...base(), cron: '0 3 * * *', overlapPolicy: 'sometimes' }), 'overlapPolicy'],
        ['an unknown missed-run policy', () => ({ ...base(), cron: '0 3 * * *', missedRunPolicy: 'all' }), 'missedRunPolicy'],
        ['a queue limit of 0', () => ({ ...base(), cron: '0 3 * * *', queueLimit: 0 }), 'queueLimit'],
        ['a queue limit over the bound', () => ({ ...base(), cron: '0 3 * * *', queueLimit: 1000 }), 'queueLimit'],
        ['an unknown field', () => ({ ...base(), cron: '0 3 * * *', extra: 1 }), ''],
        ['a cron of the wrong type', () => ({ ...base(), cron: 5 }), 'cron'],
      ];
      it.each(cases)('%s', async (_what, body, field) => {
        const before = await count('schedules');
        const res = await create(body());
        if (field) expectValidationError(res, field);
        else expectError(res, 400, 'validation_failed');
        expect(await count('schedules')).toBe(before);
      });

      it('a PATCH that would make the schedule invalid changes nothing', async () => {
        const s = (await create({ ...base(), cron: '0 3 * * *' }).expect(201)).body as Schedule;
        expectValidationError(await t.http.patch(`/api/schedules/${s.id}`).set(bearer(owner)).send({ runAt: new Date(Date.now() + 60_000).toISOString() }), 'runAt');
        expectValidationError(await t.http.patch(`/api/schedules/${s.id}`).set(bearer(owner)).send({ cron: 'nope' }), 'cron');
        expectValidationError(await t.http.patch(`/api/schedules/${s.id}`).set(bearer(owner)).send({ timezone: 'Nowhere/City' }), 'timezone');
        expectValidationError(await t.http.patch(`/api/schedules/${s.id}`).set(bearer(owner)).send({ name: 'x'.repeat(10_000) }), 'name');
        expectError(await t.http.patch(`/api/schedules/${s.id}`).set(bearer(owner)).send({}), 400);
        const after = (await t.http.get(`/api/schedules/${s.id}`).set(bearer(owner)).expect(200)).body as Schedule;
        expect(after).toMatchObject({ name: s.name, cron: s.cron, timezone: s.timezone, runAt: null, updatedAt: s.updatedAt });
      });

      it('a malformed or unknown id in the path → 404, as for any resource', async () => {
        expectError(await t.http.get('/api/schedules/not-a-uuid').set(bearer(owner)), 404);
        expectError(await t.http.get('/api/schedules/00000000-0000-4000-8000-000000000000').set(bearer(owner)), 404);
      });
    });
  });

  describe('firing, tick by tick', () => {
    const STEP = 10_000;
    /** A schedule firing every 10 s from a slot well ahead of the real clock, so no real tick reaches it first. */
    async function every10s(extra: Record<string, unknown> = {}): Promise<{ s: Schedule; first: Date }> {
      const s = (await create({ ...base(), name: `s-${Math.random()}`, cron: '*/10 * * * * *', ...extra }).expect(201)).body as Schedule;
      return { s, first: new Date(s.nextRunAt as string) };
    }
    const plus = (d: Date, ms: number) => new Date(d.getTime() + ms);
    const cancelRun = async (o: Occurrence) => {
      for (const e of o.executions) await t.http.post(`/api/executions/${e.id}/cancel`).set(bearer(owner)).expect(202);
    };

    afterEach(() => {
      t.app.get(ScheduleClock).offsetMs = 0;
    });

    it('a one-shot fires once, its executions link back to the occurrence, and it is done', async () => {
      const runAt = slotAligned(Date.now() + 3600_000, 1000);
      const s = (await create({ ...base(), runAt: runAt.toISOString() }).expect(201)).body as Schedule;
      await tickAt(t, plus(runAt, -2_000));
      expect(await history(s.id)).toEqual([]);
      await tickAt(t, plus(runAt, 100));
      await tickAt(t, plus(runAt, 5_000));
      const h = await history(s.id);
      expect(h).toHaveLength(1);
      expect(h[0]).toMatchObject({ fireAt: runAt.toISOString(), status: 'running' });
      expect(h[0].executions).toEqual([{ id: expect.any(String), machineId, status: 'queued' }]);
      const exec = (await t.http.get(`/api/executions/${h[0].executions[0].id}`).set(bearer(owner)).expect(200)).body;
      expect(exec.runId).toBe(h[0].runId);
      expect(await count('executions', 'runId = ?', [h[0].runId])).toBe(1);
      const after = (await t.http.get(`/api/schedules/${s.id}`).set(bearer(owner)).expect(200)).body as Schedule;
      expect(after.nextRunAt).toBeNull();
      expect(after.lastOccurrence).toMatchObject({ id: h[0].id, status: 'running' });
    });

    it('an ended run wakes the tick only when it is an occurrence\'s: ad-hoc runs cost one lookup, not a tick', async () => {
      const firing = t.app.get(ScheduleFiring);
      const wake = jest.spyOn(t.app.get(SchedulerService), 'wake');
      try {
        const ended = async (executionId: string): Promise<boolean> => {
          wake.mockClear();
          // The cancel publishes the final status before it answers; the lookup starts on the loop's next turn.
          await t.http.post(`/api/executions/${executionId}/cancel`).set(bearer(owner)).expect(202);
          await new Promise((resolve) => setImmediate(resolve));
          await firing.endedRunsChecked;
          return wake.mock.calls.some(([name]) => name === SCHEDULES_JOB);
        };
        const adHoc = (await t.http.post(`/api/projects/${projectId}/executions`).set(bearer(owner)).send({ script: 'echo hi', targets: { machineIds: [machineId] } }).expect(201)).body;
        expect(await ended(adHoc.executions[0].id)).toBe(false);

        const { s, first } = await every10s({ overlapPolicy: 'allow' });
        await tickAt(t, first);
        const [o] = await history(s.id);
        expect(await ended(o.executions[0].id)).toBe(true);
        await t.http.delete(`/api/schedules/${s.id}`).set(bearer(owner)).expect(204);
      } finally {
        wake.mockRestore();
      }
    });

    it('a failed occurrence shows on the list: any execution not succeeding fails it', async () => {
      const { s, first } = await every10s({ overlapPolicy: 'allow' });
      await tickAt(t, first);
      const [o] = await history(s.id);
      await cancelRun(o);
      await tickAt(t, plus(first, 1));
      const listed = ((await t.http.get(`/api/projects/${projectId}/schedules`).set(bearer(viewer)).expect(200)).body as Schedule[]).find((x) => x.id === s.id);
      expect(listed?.lastOccurrence).toMatchObject({ id: o.id, status: 'failed', reason: '1 of 1 executions cancelled' });
      await t.http.delete(`/api/schedules/${s.id}`).set(bearer(owner)).expect(204);
    });

    it('paused: nothing fires; one skip is recorded; resuming counts from then', async () => {
      const { s, first } = await every10s();
      await t.http.post(`/api/schedules/${s.id}/pause`).set(bearer(owner)).expect(200);
      for (let i = 0; i < 4; i++) await tickAt(t, plus(first, i * STEP));
      const h = await history(s.id);
      expect(h.map((o) => [o.status, o.reason])).toEqual([['skipped', 'paused']]);
      expect(await count('executions', 'runId IN (SELECT runId FROM schedule_occurrences WHERE scheduleId = ?)', [s.id])).toBe(0);
      t.app.get(ScheduleClock).offsetMs = plus(first, 5 * STEP).getTime() - Date.now();
      const resumed = (await t.http.post(`/api/schedules/${s.id}/resume`).set(bearer(owner)).expect(200)).body as Schedule;
      expect(resumed.nextRunAt).toBe(plus(first, 6 * STEP).toISOString());
      await t.http.delete(`/api/schedules/${s.id}`).set(bearer(owner)).expect(204);
    });

    it('no machine matches the targets: skipped, with why', async () => {
      const { s, first } = await every10s({ targets: { labels: { role: 'nobody' } } });
      await tickAt(t, first);
      expect((await history(s.id)).map((o) => [o.status, o.reason])).toEqual([['skipped', 'no machine matches the targets']]);
      await t.http.delete(`/api/schedules/${s.id}`).set(bearer(owner)).expect(204);
    });

    it("the creator removed from the project: occurrences are skipped with why, nothing runs in their name", async () => {
      const op = await signupUser(t.http);
      await t.http.post(`/api/projects/${projectId}/members`).set(bearer(owner)).send({ email: op.email, role: 'operator' }).expect(201);
      const s = (await create({ ...base(), name: 'by-op', cron: '*/10 * * * * *' }, op.token).expect(201)).body as Schedule;
      await t.http.delete(`/api/projects/${projectId}/members/${op.user.id}`).set(bearer(owner)).expect(204);
      await tickAt(t, new Date(s.nextRunAt as string));
      const h = await history(s.id);
      expect(h.map((o) => o.status)).toEqual(['skipped']);
      expect(h[0].reason).toMatch(/creator may no longer run scripts/);
      expect(await count('executions', 'createdBy = ?', [op.user.id])).toBe(0);
      await t.http.delete(`/api/schedules/${s.id}`).set(bearer(owner)).expect(204);
    });

    it('a file a schedule uses cannot be deleted (409 naming the schedule); once the schedule is gone, it can', async () => {
      const file = (await t.http.post(`/api/projects/${projectId}/files?kind=script&name=job.sh`).set(bearer(owner)).set('Content-Type', 'application/octet-stream').send(Buffer.from('#!/bin/sh\ntrue\n')).expect(201)).body;
      const s = (await create({ ...base(), name: 'uses-file', cron: '0 3 * * *' }).expect(201)).body as Schedule;
      // The run request names files by fileId once runs can; the column the reference check reads is set here directly.
      await t.db.query('UPDATE schedules SET fileId = ? WHERE id = ?', [file.id, s.id]);
      const refused = expectError(await t.http.delete(`/api/files/${file.id}`).set(bearer(owner)), 409);
      expect(refused.message).toContain('schedule uses-file');
      await t.http.delete(`/api/schedules/${s.id}`).set(bearer(owner)).expect(204);
      await t.http.delete(`/api/files/${file.id}`).set(bearer(owner)).expect(204);
    });

    describe('overlap', () => {
      it('skip: a slot while the previous runs is skipped with why; after it ends, the next fires', async () => {
        const { s, first } = await every10s({ overlapPolicy: 'skip' });
        await tickAt(t, first);
        await tickAt(t, plus(first, STEP));
        let h = await history(s.id);
        expect(h.map((o) => o.status)).toEqual(['skipped', 'running']);
        expect(h[0].reason).toMatch(/^overlap/);
        await cancelRun(h[1]);
        await tickAt(t, plus(first, 2 * STEP));
        h = await history(s.id);
        expect(h.map((o) => o.status)).toEqual(['running', 'skipped', 'failed']);
        await t.http.delete(`/api/schedules/${s.id}`).set(bearer(owner)).expect(204);
      });

      it('queue: waits up to the limit, beyond it skipped; the oldest waiting starts when the running one ends', async () => {
        const { s, first } = await every10s({ overlapPolicy: 'queue', queueLimit: 2 });
        for (let i = 0; i < 4; i++) await tickAt(t, plus(first, i * STEP));
        let h = await history(s.id);
        expect(h.map((o) => o.status)).toEqual(['skipped', 'queued', 'queued', 'running']);
        expect(h[0].reason).toMatch(/queue limit 2/);
        await cancelRun(h[3]);
        await tickAt(t, plus(first, 3 * STEP + 1));
        h = await history(s.id);
        expect(h.map((o) => o.status)).toEqual(['skipped', 'queued', 'running', 'failed']);
        expect(h[2].executions).toHaveLength(1);
        await t.http.delete(`/api/schedules/${s.id}`).set(bearer(owner)).expect(204);
      });

      it('replace: the running one is cancelled, the new one runs', async () => {
        const { s, first } = await every10s({ overlapPolicy: 'replace' });
        await tickAt(t, first);
        await tickAt(t, plus(first, STEP));
        await tickAt(t, plus(first, STEP + 1));
        const h = await history(s.id);
        expect(h.map((o) => o.status)).toEqual(['running', 'failed']);
        expect(h[1].executions[0].status).toBe('cancelled');
        const old = (await t.http.get(`/api/executions/${h[1].executions[0].id}`).set(bearer(owner)).expect(200)).body;
        expect(old.reason).toMatch(/replaced by the occurrence/);
        await t.http.delete(`/api/schedules/${s.id}`).set(bearer(owner)).expect(204);
      });

      it('allow: both run', async () => {
        const { s, first } = await every10s({ overlapPolicy: 'allow' });
        await tickAt(t, first);
        await tickAt(t, plus(first, STEP));
        expect((await history(s.id)).map((o) => o.status)).toEqual(['running', 'running']);
        await t.http.delete(`/api/schedules/${s.id}`).set(bearer(owner)).expect(204);
      });
    });

    it('a slot a little late still fires as itself; the slots are the cron ones, not the tick times', async () => {
      const { s, first } = await every10s({ overlapPolicy: 'allow' });
      await tickAt(t, plus(first, 2_345));
      await tickAt(t, plus(first, STEP + 17_000)); // 7 s past the third slot: two due, both fire
      const h = await history(s.id);
      expect(h.map((o) => o.fireAt)).toEqual([plus(first, 2 * STEP), plus(first, STEP), first].map((d) => d.toISOString()));
      await t.http.delete(`/api/schedules/${s.id}`).set(bearer(owner)).expect(204);
    });

    it('a real schedule every 2 s fires within a second of its slots, unprompted', async () => {
      const s = (await create({ ...base(), name: 'fast', cron: '*/2 * * * * *', overlapPolicy: 'allow' }).expect(201)).body as Schedule;
      const fired = await waitFor(
        'three occurrences',
        async () => {
          const h = await history(s.id);
          return h.filter((o) => o.firedAt).length >= 3 ? h : undefined;
        },
        15_000,
        100,
      );
      await t.http.delete(`/api/schedules/${s.id}`).set(bearer(owner)).expect(204);
      for (const o of fired.filter((x) => x.firedAt)) {
        const lateness = new Date(o.firedAt as string).getTime() - new Date(o.fireAt).getTime();
        expect(lateness).toBeGreaterThanOrEqual(0);
        expect(lateness).toBeLessThan(1000);
      }
    });

    it("a schedule changed with an API token leaves the token's narrowing behind: the same user's schedule in another project still fires", async () => {
      // The firing job's timer is re-armed inside whichever request last changed a schedule; it must not run as that request.
      const elsewhere = await projectWithMachine(t, owner);
      const runAt = slotAligned(Date.now() + 3_000, 1000);
      const theirs = (await create({ ...base(), name: 'elsewhere', runAt: runAt.toISOString() }, owner, elsewhere.projectId).expect(201)).body as Schedule;
      const token = (await t.http.post('/api/tokens').set(bearer(owner)).send({ name: 'ci', projectId, role: 'operator' }).expect(201)).body.token as string;
      const mine = (await create({ ...base(), name: 'through a token', cron: '0 3 * * *' }, token).expect(201)).body as Schedule;
      const fired = await waitFor(
        'the other project\'s one-shot to fire or be skipped',
        async () => (await history(theirs.id)).find((o) => o.firedAt || o.status === 'skipped'),
        15_000,
        100,
      );
      expect(fired).toMatchObject({ status: expect.stringMatching(/^(queued|running|succeeded)$/), reason: null });
      expect(fired.executions).toEqual([{ id: expect.any(String), machineId: elsewhere.machineId, status: expect.any(String) }]);
      for (const id of [theirs.id, mine.id]) await t.http.delete(`/api/schedules/${id}`).set(bearer(owner)).expect(204);
    });
  });

  describe('missed runs across a restart', () => {
    let dir: string;
    let scratch: Awaited<ReturnType<typeof createScratchDatabase>> | undefined;
    const env = (): TestEnv => ({ KAPITAN_DATA_DIR: dir, ...(scratch ? { DATABASE_URL: scratch.databaseUrl } : {}) });

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'kapitan-sched-restart-'));
      if (database === 'mysql') scratch = await createScratchDatabase('mysql');
    });
    afterAll(async () => {
      await scratch?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    it.each(['run_once', 'skip'] as const)('%s: slots that fell while no server was up give one occurrence, then the schedule goes on from now', async (policy) => {
      const a = await createTestApp({ database: database as TestDatabaseKind, env: env() });
      let first: Date;
      let id: string;
      let token: string;
      try {
        token = (await signupUser(a.http)).token;
        const p = await projectWithMachine(a, token);
        const s = (await a.http.post(`/api/projects/${p.projectId}/schedules`).set(bearer(token)).send({ ...base(), cron: '*/10 * * * * *', missedRunPolicy: policy }).expect(201)).body as Schedule;
        id = s.id;
        first = new Date(s.nextRunAt as string);
      } finally {
        await a.close();
      }
      // An hour later, a server comes up: 360 slots fell meanwhile.
      const b = await createTestApp({ database: database as TestDatabaseKind, env: env() });
      try {
        const back = new Date(first.getTime() + 3600_000 + 3_000);
        await tickAt(b, back);
        await tickAt(b, new Date(back.getTime() + 1_000));
        const h = (await b.http.get(`/api/schedules/${id}/occurrences`).set(bearer(token)).expect(200)).body as Occurrence[];
        expect(h).toHaveLength(1);
        expect(h[0].fireAt).toBe(first.toISOString());
        if (policy === 'run_once') {
          expect(h[0]).toMatchObject({ status: 'running' });
          expect(h[0].reason).toMatch(/run once/);
          expect(h[0].executions).toHaveLength(1);
        } else {
          expect(h[0]).toMatchObject({ status: 'skipped' });
          expect(h[0].reason).toMatch(/missed/);
          expect(h[0].executions).toHaveLength(0);
        }
        const s = (await b.http.get(`/api/schedules/${id}`).set(bearer(token)).expect(200)).body as Schedule;
        expect(new Date(s.nextRunAt as string).getTime()).toBeGreaterThan(back.getTime());
        expect(new Date(s.nextRunAt as string).getTime()).toBeLessThanOrEqual(back.getTime() + 10_000);
      } finally {
        await b.close();
      }
    });
  });
});
