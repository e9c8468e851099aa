/**
 * The execution state machine on both databases, driven through the
 * lifecycle service with rows made by the real REST API: one start, one
 * finish, the sweep's expiry and loss rules (design invariant 1, threat
 * model T25).
 */
import { randomUUID } from 'node:crypto';
import { In, Repository } from 'typeorm';
import { bearer, createTestApp, describeBothDatabases, TestApp } from '../testing/test-app';
import { enrolMachine, setupProject, type SpecProject } from '../testing/sockets';
import { ExecutionLifecycleService } from './execution-lifecycle.service';
import { ExecutionEntity } from './execution.entity';
import { MachineEntity } from '../machines/machine.entity';
import { OutputWriter } from './output-writer.service';
import { ExecutionSecretsService } from './execution-secrets.service';

describeBothDatabases('execution lifecycle', (database) => {
  let t: TestApp;
  let p: SpecProject;
  let machineId: string;
  let lifecycle: ExecutionLifecycleService;
  let rows: Repository<ExecutionEntity>;

  beforeAll(async () => {
    t = await createTestApp({ database, env: { KAPITAN_LOST_AFTER_SECONDS: '60' } });
    p = await setupProject(t);
    machineId = (await enrolMachine(t, p)).machineId;
    lifecycle = t.app.get(ExecutionLifecycleService);
    rows = t.db.getRepository(ExecutionEntity);
  });
  afterAll(() => t?.close());

  /** A queued execution (the machine is offline, so nothing is pushed). */
  const queued = async (body: Record<string, unknown> = {}): Promise<string> =>
    (await t.http.post(`/api/projects/${p.projectId}/executions`).set(bearer(p.owner.token)).send({ script: 'true', targets: { all: true }, ...body }).expect(201)).body
      .executions[0].id;
  const row = (id: string) => rows.findOneByOrFail({ id });
  const finished = (executionId: string, status: 'succeeded' | 'failed' = 'succeeded', lastSeq = -1) => ({
    executionId,
    status,
    exitCode: status === 'succeeded' ? 0 : 1,
    signal: null,
    finishedAt: new Date().toISOString(),
    lastSeq,
  });

  test("a hello names every execution it read as the machine's own, and a run without secrets needs no read to mask", async () => {
    // A node that just started: the machine's socket is new, so nothing is known about its executions yet.
    // A project of its own: the other tests run on the one machine of theirs.
    const q = await setupProject(t, 'hello');
    const { machineId: back } = await enrolMachine(t, q);
    const { machineId: neighbour } = await enrolMachine(t, q);
    const on = async (id: string, body: Record<string, unknown> = {}): Promise<string> =>
      (await t.http.post(`/api/projects/${q.projectId}/executions`).set(bearer(q.owner.token)).send({ script: 'true', targets: { machineIds: [id] }, ...body }).expect(201)).body
        .executions[0].id;
    await t.http.post(`/api/projects/${q.projectId}/secrets`).set(bearer(q.owner.token)).send({ name: 'HELLO_TOKEN', value: 'hello-secret-value' }).expect(201);
    const plain = await on(back);
    const withSecret = await on(back, { secrets: ['HELLO_TOKEN'] });
    const waiting = await on(back);
    const elsewhere = await on(neighbour);
    const at = new Date().toISOString();
    expect(await lifecycle.started(back, { executionId: plain, startedAt: at })).toBe(true);
    expect(await lifecycle.started(back, { executionId: withSecret, startedAt: at })).toBe(true);
    const secrets = t.app.get(ExecutionSecretsService);
    for (const id of [plain, withSecret]) secrets.forget(id);

    const plan = await lifecycle.planForHello(back, [plain, withSecret]);
    expect([...plan.owned].sort()).toEqual([plain, withSecret, waiting].sort());
    expect(plan.owned).not.toContain(elsewhere);
    expect(plan.dispatch.map((d) => d.executionId)).toEqual([waiting]);

    const find = jest.spyOn(rows, 'find');
    try {
      const chunk = { seq: 0, stream: 'stdout' as const, data: 'nothing to hide' };
      expect(await secrets.mask(plain, [chunk])).toEqual([chunk]);
      expect(find).not.toHaveBeenCalled();
      // One with secrets is still resolved, and masked.
      const [masked] = await secrets.mask(withSecret, [{ seq: 0, stream: 'stdout', data: 'x hello-secret-value y' }]);
      expect(masked.data).not.toContain('hello-secret-value');
      expect(find).toHaveBeenCalled();
    } finally {
      find.mockRestore();
    }
  });

  test('one start: a repeat is accepted and changes nothing; a start after a cancel is refused', async () => {
    const id = await queued();
    const at = '2026-01-01T00:00:00.000Z';
    expect(await lifecycle.started(machineId, { executionId: id, startedAt: at })).toBe(true);
    expect(await lifecycle.started(machineId, { executionId: id, startedAt: new Date().toISOString() })).toBe(true);
    expect((await row(id)).startedAt?.toISOString()).toBe(at);

    const cancelled = await queued();
    await t.http.post(`/api/executions/${cancelled}/cancel`).set(bearer(p.owner.token)).expect(202);
    expect(await lifecycle.started(machineId, { executionId: cancelled, startedAt: at })).toBe(false);
    expect((await row(cancelled)).status).toBe('cancelled');
    // Another machine's start names nothing.
    expect(await lifecycle.started(randomUUID(), { executionId: id, startedAt: at })).toBe(false);
  });

  test('one finish: the first one counts, later ones and other machines change nothing', async () => {
    const id = await queued();
    await lifecycle.started(machineId, { executionId: id, startedAt: new Date().toISOString() });
    await lifecycle.finished(randomUUID(), finished(id, 'failed'));
    expect((await row(id)).status).toBe('running');
    await lifecycle.finished(machineId, finished(id, 'succeeded', 4));
    await lifecycle.finished(machineId, finished(id, 'failed', 9));
    expect(await row(id)).toMatchObject({ status: 'succeeded', exitCode: 0, lastSeq: 4 });
  });

  test('a finish commits the output still in the batch first, so a final log is whole', async () => {
    const id = await queued();
    await lifecycle.started(machineId, { executionId: id, startedAt: new Date().toISOString() });
    const stored = t.app.get(OutputWriter).write(id, [{ seq: 0, stream: 'stdout', data: 'last words' }]);
    await lifecycle.finished(machineId, finished(id, 'succeeded', 0));
    await stored;
    const n = await t.db.query('SELECT COUNT(*) AS n FROM execution_chunks WHERE executionId = ?', [id]);
    expect(Number(n[0].n)).toBe(1);
  });

  test('many starts and finishes in one turn (their reads share a query): one start and one finish of each apply', async () => {
    const ids = await Promise.all(Array.from({ length: 40 }, () => queued()));
    const at = new Date().toISOString();
    // Starts in one turn, then finishes in the next: an agent sends a run's start before its finish, and a
    // start that loses the race to its finish is refused (replayed-start.spec.ts), which is not this test.
    const starts = await Promise.all(
      ids.flatMap((id) => [
        lifecycle.started(machineId, { executionId: id, startedAt: at }),
        lifecycle.started(machineId, { executionId: id, startedAt: at }), // a replay: accepted, changes nothing
        lifecycle.started(randomUUID(), { executionId: id, startedAt: at }), // another machine: refused
      ]),
    );
    expect(starts.filter((r) => r === true)).toHaveLength(2 * ids.length);
    expect(starts.filter((r) => r === false)).toHaveLength(ids.length);
    await Promise.all(
      ids.flatMap((id, i) => [
        lifecycle.finished(machineId, finished(id, i % 2 ? 'failed' : 'succeeded', i)),
        lifecycle.finished(machineId, finished(id, 'succeeded', 999)),
        lifecycle.finished(randomUUID(), finished(id, 'failed', 7)), // another machine: ignored
      ]),
    );
    const stored = await rows.find({ where: { id: In(ids) } });
    for (const e of stored) {
      const i = ids.indexOf(e.id);
      // Two finishes in flight at once: exactly one of them is recorded, whole (never a mix of both).
      const first = { status: i % 2 ? 'failed' : 'succeeded', lastSeq: i, exitCode: i % 2 ? 1 : 0 };
      const repeat = { status: 'succeeded', lastSeq: 999, exitCode: 0 };
      expect([first, repeat]).toContainEqual({ status: e.status, lastSeq: e.lastSeq, exitCode: e.exitCode });
      expect(e.startedAt).not.toBeNull();
    }
    expect(stored).toHaveLength(ids.length);
    expect(await lifecycle.started(machineId, { executionId: ids[0]!, startedAt: at })).toBe(false);
    // Ownership of many ids at once, for the machine and for another one.
    expect(await lifecycle.ownedBy(machineId, [...ids, randomUUID()])).toEqual(new Set(ids));
    expect((await lifecycle.ownedBy(randomUUID(), ids)).size).toBe(0);
  });

  test('a finish without a start still records when it ran, except for lost work', async () => {
    const ran = await queued();
    await lifecycle.finished(machineId, finished(ran));
    expect((await row(ran)).startedAt).not.toBeNull();
    const lost = await queued();
    await lifecycle.finished(machineId, { ...finished(lost), status: 'lost', exitCode: null, reason: 'agent restarted' });
    expect(await row(lost)).toMatchObject({ status: 'lost', startedAt: null, reason: 'agent restarted' });
  });

  test('the sweep expires queued work past its time and loses running work of a machine gone too long, nothing else', async () => {
    const expired = await queued({ expiresInSeconds: 3600 });
    const fresh = await queued({ expiresInSeconds: 3600 });
    await rows.update({ id: expired }, { expiresAt: new Date(Date.now() - 1000) });
    const running = await queued();
    const runningFresh = await queued();
    await rows.update({ id: In([running, runningFresh]) }, { status: 'running', startedAt: new Date() });

    // The machine was last seen a moment ago: its running work is not lost yet.
    const machines = t.db.getRepository(MachineEntity);
    await machines.update({ id: machineId }, { status: 'offline', lastSeenAt: new Date(Date.now() - 5_000) });
    await lifecycle.sweep();
    expect((await row(expired)).status).toBe('expired');
    expect((await row(fresh)).status).toBe('queued');
    expect((await row(running)).status).toBe('running');

    // Gone for longer than KAPITAN_LOST_AFTER_SECONDS: lost, with the reason.
    await machines.update({ id: machineId }, { lastSeenAt: new Date(Date.now() - 120_000) });
    await lifecycle.sweep();
    for (const id of [running, runningFresh]) expect(await row(id)).toMatchObject({ status: 'lost', reason: expect.stringMatching(/offline for more than 60 s/) });
    expect((await row(fresh)).status).toBe('queued');
    await lifecycle.sweep(); // idempotent
    expect((await row(running)).status).toBe('lost');
  });
});
