/**
 * Containers on both databases, with real sockets: an agent's snapshot
 * replaces and its changes patch, live at the project's dashboards and over
 * REST; an agent can write only its own machine's rows (threat model T10,
 * T11, T41); actions are operation rows delivered at least once; bad input
 * is refused case by case and changes nothing (T12); log follows start and
 * stop with their watcher. Reports of many agents are written in batches:
 * a machine's reports keep their order, one machine's batch-mate cannot
 * touch its rows, and a report the database refuses fails that report's
 * ack alone.
 */
import { AgentEvents, LiveClientEvents, LiveServerEvents, ServerToAgentEvents, type Container } from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import type { Socket } from 'socket.io-client';
import { bearer, createTestApp, describeBothDatabases, expectError, expectValidationError, signupUser, TestApp, waitFor } from '../testing/test-app';
import { closeSockets, connectAgent, connectLive, emitWithAck, enrolMachine, helloBody, nextEvent, record, setupProject, SpecProject } from '../testing/sockets';
import { ContainerLogsService } from './container-logs.service';
import { ContainerOperationsService, OPERATION_EXPIRES_MS } from './container-operations.service';
import { ContainerStateService } from './container-state.service';
import { ContainerOperationEntity } from './container.entity';

const hex = (c: string) => c.repeat(64);
const container = (id: string, over: Partial<Container> = {}): Container => ({
  id,
  name: `c-${id.slice(0, 4)}`,
  image: 'kapitan-test/busybox:1',
  imageId: 'sha256:' + 'e'.repeat(64),
  state: 'running',
  status: 'Up 2 seconds',
  health: 'none',
  ports: [{ privatePort: 80, publicPort: 8080, protocol: 'tcp', ip: '0.0.0.0' }],
  labels: { 'com.example.role': 'web' },
  createdAt: '2026-12-01T10:00:00.000Z',
  startedAt: '2026-12-01T10:00:01.000Z',
  finishedAt: null,
  exitCode: null,
  restartCount: 0,
  ...over,
});

describeBothDatabases('containers', (database) => {
  let t: TestApp;
  let a: SpecProject;
  let b: SpecProject;
  let ma: { machineId: string; credential: string };
  let mb: { machineId: string; credential: string };
  let agentA: Socket;
  let agentB: Socket;
  let liveA: Socket;
  let viewer: { token: string };
  let stranger: { token: string };

  const rows = async (machineId: string): Promise<{ id: string; state: string }[]> =>
    t.db.query(`SELECT id, state FROM containers WHERE machineId = '${machineId}' ORDER BY id`);
  const opCount = async (): Promise<number> => Number((await t.db.query('SELECT COUNT(*) AS n FROM container_operations'))[0].n);

  beforeAll(async () => {
    t = await createTestApp({ database });
    a = await setupProject(t, 'a');
    b = await setupProject(t, 'b');
    ma = await enrolMachine(t, a);
    mb = await enrolMachine(t, b);
    const v = await signupUser(t.http);
    viewer = v;
    stranger = await signupUser(t.http);
    await t.http.post(`/api/projects/${a.projectId}/members`).set(bearer(a.owner.token)).send({ email: v.email, role: 'viewer' }).expect(201);
    agentA = await connectAgent(t.url, ma.credential);
    agentB = await connectAgent(t.url, mb.credential);
    expect((await emitWithAck(agentA, AgentEvents.hello, helloBody())).ok).toBe(true);
    expect((await emitWithAck(agentB, AgentEvents.hello, helloBody())).ok).toBe(true);
    liveA = await connectLive(t.url, a.owner.token);
    expect((await emitWithAck(liveA, LiveClientEvents.subscribeProject, { projectId: a.projectId })).ok).toBe(true);
  });
  afterAll(async () => {
    closeSockets();
    await t?.close();
  });

  test('a snapshot in parts replaces what was held; it reaches the live project room and REST', async () => {
    const snapshotId = randomUUID();
    const live = nextEvent<{ snapshot: boolean; machineId: string; containers: { id: string }[] }>(liveA, LiveServerEvents.containers, (e) => e.snapshot);
    expect(await emitWithAck(agentA, AgentEvents.containersSnapshot, { snapshotId, containers: [container(hex('a'))], last: false })).toEqual({ ok: true });
    expect(await emitWithAck(agentA, AgentEvents.containersSnapshot, { snapshotId, containers: [container(hex('b'))], last: true })).toEqual({ ok: true });
    const e = await live;
    expect(e.machineId).toBe(ma.machineId);
    expect(e.containers.map((c) => c.id)).toEqual([hex('a'), hex('b')]);

    const list = await t.http.get(`/api/machines/${ma.machineId}/containers`).set(bearer(viewer.token)).expect(200);
    expect(list.body).toHaveLength(2);
    expect(list.body[0]).toMatchObject({ id: hex('a'), machineId: ma.machineId, state: 'running', ports: [{ privatePort: 80, publicPort: 8080 }], labels: { 'com.example.role': 'web' } });

    // a second snapshot without b: b is gone
    await emitWithAck(agentA, AgentEvents.containersSnapshot, { snapshotId: randomUUID(), containers: [container(hex('a'))], last: true });
    expect((await rows(ma.machineId)).map((r) => r.id)).toEqual([hex('a')]);
  });

  test('changes patch: a new container, a state change, a removal', async () => {
    const live = nextEvent<{ snapshot: boolean; containers: { id: string; state: string }[]; removed: string[] }>(liveA, LiveServerEvents.containers, (e) => !e.snapshot);
    await emitWithAck(agentA, AgentEvents.containersChanged, { containers: [container(hex('c')), container(hex('a'), { state: 'exited', exitCode: 0 })], removed: [] });
    const e = await live;
    expect(e.containers.map((c) => [c.id, c.state])).toEqual([[hex('c'), 'running'], [hex('a'), 'exited']]);
    await emitWithAck(agentA, AgentEvents.containersChanged, { containers: [], removed: [hex('c')] });
    expect(await rows(ma.machineId)).toEqual([{ id: hex('a'), state: 'exited' }]);
  });

  test('docker status is stored and pushed; REST shows it', async () => {
    const live = nextEvent<{ status: { available: boolean; reason: string } }>(liveA, LiveServerEvents.dockerStatus);
    expect(await emitWithAck(agentA, AgentEvents.dockerStatus, { available: false, reason: 'no Docker socket at /var/run/docker.sock', engineVersion: null })).toEqual({ ok: true });
    expect((await live).status).toMatchObject({ available: false, reason: 'no Docker socket at /var/run/docker.sock' });
    const s = await t.http.get(`/api/machines/${ma.machineId}/docker`).set(bearer(viewer.token)).expect(200);
    expect(s.body).toMatchObject({ machineId: ma.machineId, available: false });
    await emitWithAck(agentA, AgentEvents.dockerStatus, { available: true, reason: null, engineVersion: '27.0' });
  });

  test("an agent of project B can never write machine A's containers: its rows are its own, a machine id in a payload is refused", async () => {
    const before = await rows(ma.machineId);
    const seen = record(liveA, LiveServerEvents.containers);
    // the same container id from B's agent is B's container
    await emitWithAck(agentB, AgentEvents.containersSnapshot, { snapshotId: randomUUID(), containers: [container(hex('a'), { state: 'dead' })], last: true });
    await emitWithAck(agentB, AgentEvents.containersChanged, { containers: [], removed: [hex('a')] });
    expect(await rows(ma.machineId)).toEqual(before);
    for (const bad of [
      { machineId: ma.machineId, containers: [container(hex('d'))], removed: [] },
      { containers: [{ ...container(hex('d')), machineId: ma.machineId }], removed: [] },
    ]) {
      const ack = await emitWithAck<{ ok: boolean; error: { code: string; message: string } }>(agentB, AgentEvents.containersChanged, bad);
      expect(ack.ok).toBe(false);
      expect(ack.error.code).toBe('validation_failed');
      expect(ack.error.message).toMatch(/machineId/);
    }
    expect(await rows(ma.machineId)).toEqual(before);
    expect((await rows(mb.machineId)).length).toBe(0);
    // nothing of B's reached A's dashboard
    await emitWithAck(liveA, LiveClientEvents.subscribeProject, { projectId: a.projectId });
    expect(seen).toEqual([]);
  });

  test('malformed reports are refused with the field named and change nothing', async () => {
    const before = await rows(ma.machineId);
    const cases: [unknown, RegExp][] = [
      [{ containers: [container('xyz')], removed: [] }, /containers\.0\.id/],
      [{ containers: [container(hex('a'), { state: 'flying' as never })], removed: [] }, /state/],
      [{ containers: [], removed: [] }, /empty change/],
      [{ containers: Array.from({ length: 101 }, (_, i) => container(i.toString(16).padStart(64, '0'))), removed: [] }, /containers/],
      [{ containers: [container(hex('a'), { name: 'x'.repeat(200) })], removed: [] }, /name/],
      ['not an object', /root|expected object/],
    ];
    for (const [payload, field] of cases) {
      const ack = await emitWithAck<{ ok: boolean; error: { message: string } }>(agentA, AgentEvents.containersChanged, payload);
      expect(ack.ok).toBe(false);
      expect(ack.error.message).toMatch(field);
    }
    expect(await rows(ma.machineId)).toEqual(before);
  });

  test('REST: a stranger, an unknown or malformed machine id get 404; an API token works through the guards', async () => {
    await expectError(await t.http.get(`/api/machines/${ma.machineId}/containers`).set(bearer(stranger.token)), 404);
    await expectError(await t.http.get(`/api/machines/${randomUUID()}/containers`).set(bearer(a.owner.token)), 404);
    await expectError(await t.http.get(`/api/machines/${mb.machineId}/containers`).set(bearer(a.owner.token)), 404);
    // a malformed machine id names no machine: 404, as everywhere in the API
    await expectError(await t.http.get('/api/machines/not-a-uuid/containers').set(bearer(a.owner.token)), 404);
    const tok = (await t.http.post('/api/tokens').set(bearer(a.owner.token)).send({ name: 'ci', projectId: a.projectId, role: 'viewer' }).expect(201)).body.token;
    expect((await t.http.get(`/api/machines/${ma.machineId}/containers`).set(bearer(tok)).expect(200)).body.length).toBeGreaterThan(0);
    // a viewer token cannot act (403), and a token of project B cannot see A's machine (404)
    await expectError(await t.http.post(`/api/machines/${ma.machineId}/containers/${hex('a')}/stop`).set(bearer(tok)), 403);
    const tokB = (await t.http.post('/api/tokens').set(bearer(b.owner.token)).send({ name: 'ci', projectId: b.projectId, role: 'operator' }).expect(201)).body.token;
    await expectError(await t.http.get(`/api/machines/${ma.machineId}/containers`).set(bearer(tokB)), 404);
  });

  test('an action on an unknown container, a bad action or a malformed spec is refused and queues nothing', async () => {
    const n = await opCount();
    const owner = bearer(a.owner.token);
    await expectError(await t.http.post(`/api/machines/${ma.machineId}/containers/${hex('f')}/stop`).set(owner), 404);
    // B's container id is not on A's machine
    await emitWithAck(agentB, AgentEvents.containersChanged, { containers: [container(hex('9'))], removed: [] });
    await expectError(await t.http.post(`/api/machines/${ma.machineId}/containers/${hex('9')}/stop`).set(owner), 404);
    expectValidationError(await t.http.post(`/api/machines/${ma.machineId}/containers/${hex('a')}/explode`).set(owner), 'action');
    expectValidationError(await t.http.post(`/api/machines/${ma.machineId}/containers/abc/stop`).set(owner), 'containerId');
    await expectError(await t.http.post(`/api/machines/${ma.machineId}/containers/${hex('a')}/stop`).set(bearer(viewer.token)), 403);
    const specs: [unknown, string][] = [
      [{}, 'image'],
      [{ image: 'has space' }, 'image'],
      [{ image: 'x', name: '../etc' }, 'name'],
      [{ image: 'x', env: { '1BAD': 'v' } }, 'env.1BAD'],
      [{ image: 'x', ports: [{ containerPort: 70000 }] }, 'ports.0.containerPort'],
      [{ image: 'x', volumes: [{ source: 'relative/path', target: '/data' }] }, 'volumes.0.source'],
      [{ image: 'x', volumes: [{ source: '/srv', target: 'data' }] }, 'volumes.0.target'],
      [{ image: 'x', restartPolicy: 'sometimes' }, 'restartPolicy'],
      [{ image: 'x', command: 'sh -c evil' }, 'command'],
      [{ image: 'x', privileged: true }, 'privileged'],
      [{ image: 'x', waitSeconds: 100000 }, 'waitSeconds'],
      [{ image: 'x\u0000y' }, 'image'],
    ];
    for (const [body, field] of specs) expectValidationError(await t.http.post(`/api/machines/${ma.machineId}/containers`).set(owner).send(body as object), field);
    expect(await opCount()).toBe(n);
  });

  test('an action is an operation row, pushed to the agent, moved by its reports, live; a foreign report is refused', async () => {
    const dispatched = nextEvent<{ operationId: string; kind: string; containerId: string }>(agentA, ServerToAgentEvents.containerOperation);
    const res = await t.http.post(`/api/machines/${ma.machineId}/containers/${hex('a')}/start`).set(bearer(a.owner.token)).expect(202);
    expect(res.body).toMatchObject({ status: 'queued', kind: 'start', containerId: hex('a'), machineId: ma.machineId });
    const d = await dispatched;
    expect(d).toEqual({ operationId: res.body.id, kind: 'start', containerId: hex('a'), spec: null });

    // B's agent cannot report on A's operation
    const foreign = await emitWithAck<{ ok: boolean }>(agentB, AgentEvents.containerOperationFinished, { operationId: d.operationId, status: 'succeeded', error: null, containerId: null, finishedAt: new Date().toISOString() });
    expect(foreign.ok).toBe(false);
    expect((await t.http.get(`/api/container-operations/${d.operationId}`).set(bearer(a.owner.token))).body.status).toBe('queued');

    const running = nextEvent<{ operation: { status: string } }>(liveA, LiveServerEvents.containerOperation, (e) => e.operation.status === 'running');
    expect(await emitWithAck(agentA, AgentEvents.containerOperationStarted, { operationId: d.operationId, startedAt: new Date().toISOString() })).toEqual({ ok: true });
    await running;
    const failed = nextEvent<{ operation: { status: string; error: string } }>(liveA, LiveServerEvents.containerOperation, (e) => e.operation.status === 'failed');
    const finished = { operationId: d.operationId, status: 'failed', error: 'Error response from daemon: cannot start', containerId: hex('a'), finishedAt: new Date().toISOString() };
    expect(await emitWithAck(agentA, AgentEvents.containerOperationFinished, finished)).toEqual({ ok: true });
    expect((await failed).operation.error).toBe('Error response from daemon: cannot start');
    // a repeated or contradicting finish changes nothing
    await emitWithAck(agentA, AgentEvents.containerOperationFinished, { ...finished, status: 'succeeded', error: null });
    const got = await t.http.get(`/api/container-operations/${d.operationId}`).set(bearer(viewer.token)).expect(200);
    expect(got.body).toMatchObject({ status: 'failed', error: 'Error response from daemon: cannot start' });
    await expectError(await t.http.get(`/api/container-operations/${d.operationId}`).set(bearer(stranger.token)), 404);
    const listed = await t.http.get(`/api/machines/${ma.machineId}/container-operations`).set(bearer(viewer.token)).expect(200);
    expect(listed.body.map((o: { id: string }) => o.id)).toContain(d.operationId);
  });

  test('delivery is at least once: an operation queued while the agent is away is sent at its hello', async () => {
    agentA.close();
    const res = await t.http.post(`/api/machines/${ma.machineId}/containers`).set(bearer(a.owner.token)).send({ image: 'kapitan-test/busybox:1', name: 'web', env: { A: '1' } }).expect(202);
    agentA = await connectAgent(t.url, ma.credential);
    const dispatched = nextEvent<{ operationId: string; spec: { image: string } }>(agentA, ServerToAgentEvents.containerOperation, (p) => p.operationId === res.body.id);
    expect((await emitWithAck(agentA, AgentEvents.hello, helloBody())).ok).toBe(true);
    expect((await dispatched).spec).toMatchObject({ image: 'kapitan-test/busybox:1', name: 'web', env: { A: '1' } });
    await emitWithAck(agentA, AgentEvents.containerOperationFinished, { operationId: res.body.id, status: 'succeeded', error: null, containerId: hex('7'), finishedAt: new Date().toISOString() });
    await waitFor('succeeded', async () => (await t.http.get(`/api/container-operations/${res.body.id}`).set(bearer(a.owner.token))).body.status === 'succeeded' || undefined);
  });

  test('a queued operation past its expiry fails with the reason and is not sent at the next hello', async () => {
    agentA.close();
    const res = await t.http.post(`/api/machines/${ma.machineId}/containers/${hex('a')}/restart`).set(bearer(a.owner.token)).expect(202);
    const ops = t.app.get(ContainerOperationsService);
    expect(await ops.expire(new Date(Date.now() + OPERATION_EXPIRES_MS + 1000))).toBeGreaterThanOrEqual(1);
    const got = (await t.http.get(`/api/container-operations/${res.body.id}`).set(bearer(a.owner.token)).expect(200)).body;
    expect(got).toMatchObject({ status: 'failed', error: expect.stringMatching(/expired/) });
    agentA = await connectAgent(t.url, ma.credential);
    const sent = record<{ operationId: string }>(agentA, ServerToAgentEvents.containerOperation);
    expect((await emitWithAck(agentA, AgentEvents.hello, helloBody())).ok).toBe(true);
    await emitWithAck(agentA, AgentEvents.heartbeat, { at: new Date().toISOString() });
    expect(sent.map((s) => s.operationId)).not.toContain(res.body.id);
  });

  test('an operation that expired while its agent was away fails at the hello, before any sweep, and is not sent', async () => {
    agentA.close();
    const res = await t.http.post(`/api/machines/${ma.machineId}/containers/${hex('a')}/restart`).set(bearer(a.owner.token)).expect(202);
    await t.db.getRepository(ContainerOperationEntity).update({ id: res.body.id }, { expiresAt: new Date(Date.now() - 1000) });
    agentA = await connectAgent(t.url, ma.credential);
    const sent = record<{ operationId: string }>(agentA, ServerToAgentEvents.containerOperation);
    expect((await emitWithAck(agentA, AgentEvents.hello, helloBody())).ok).toBe(true);
    await emitWithAck(agentA, AgentEvents.heartbeat, { at: new Date().toISOString() });
    expect(sent.map((s) => s.operationId)).not.toContain(res.body.id);
    const got = (await t.http.get(`/api/container-operations/${res.body.id}`).set(bearer(a.owner.token)).expect(200)).body;
    expect(got).toMatchObject({ status: 'failed', error: expect.stringMatching(/expired/) });
  });

  test('logs: a viewer subscribes, the agent is asked to follow, lines arrive; another agent cannot feed the stream; leaving stops the follow', async () => {
    await emitWithAck(agentA, AgentEvents.containersChanged, { containers: [container(hex('a'))], removed: [] });
    const liveV = await connectLive(t.url, viewer.token);
    const follow = nextEvent<{ streamId: string; containerId: string; tail: number }>(agentA, ServerToAgentEvents.containerLogsFollow);
    const sub = await emitWithAck<{ ok: boolean; streamId: string }>(liveV, LiveClientEvents.subscribeContainerLogs, { machineId: ma.machineId, containerId: hex('a'), tail: 50 });
    expect(sub.ok).toBe(true);
    expect(await follow).toMatchObject({ streamId: sub.streamId, containerId: hex('a'), tail: 50 });

    const lines = record<{ streamId: string; lines: { data: string }[] }>(liveV, LiveServerEvents.containerLogs);
    await emitWithAck(agentB, AgentEvents.containerLogs, { streamId: sub.streamId, lines: [{ stream: 'stdout', data: 'forged' }] });
    await emitWithAck(agentA, AgentEvents.containerLogs, { streamId: sub.streamId, lines: [{ stream: 'stdout', data: 'hello \u001b[31mred\u001b[0m' }] });
    await waitFor('a line', () => lines.length > 0 || undefined);
    expect(lines.flatMap((l) => l.lines.map((x) => x.data))).toEqual(['hello \u001b[31mred\u001b[0m']);

    // a stranger and another project's machine are refused; a foreign unsubscribe changes nothing
    const liveS = await connectLive(t.url, stranger.token);
    expect((await emitWithAck(liveS, LiveClientEvents.subscribeContainerLogs, { machineId: ma.machineId, containerId: hex('a') })).ok).toBe(false);
    expect((await emitWithAck(liveV, LiveClientEvents.subscribeContainerLogs, { machineId: mb.machineId, containerId: hex('9') })).ok).toBe(false);
    expect((await emitWithAck(liveV, LiveClientEvents.subscribeContainerLogs, { machineId: ma.machineId, containerId: hex('f') })).ok).toBe(false);
    const stops = record<{ streamId: string }>(agentA, ServerToAgentEvents.containerLogsStop);
    await emitWithAck(liveS, LiveClientEvents.unsubscribeContainerLogs, { streamId: sub.streamId });
    const logs = t.app.get(ContainerLogsService);
    expect(logs.watched()).toContain(sub.streamId);

    // the viewer goes away: at the next check the agent is told to stop
    liveV.close();
    await waitFor('the socket to leave', () => (logs.check(), stops.length > 0) || undefined);
    expect(stops).toEqual([{ streamId: sub.streamId }]);
    expect(logs.watched()).not.toContain(sub.streamId);
  });

  test('logs: an explicit unsubscribe stops at once', async () => {
    const liveV = await connectLive(t.url, viewer.token);
    const sub = await emitWithAck<{ ok: boolean; streamId: string }>(liveV, LiveClientEvents.subscribeContainerLogs, { machineId: ma.machineId, containerId: hex('a'), tail: 0 });
    const stop = nextEvent<{ streamId: string }>(agentA, ServerToAgentEvents.containerLogsStop);
    expect((await emitWithAck(liveV, LiveClientEvents.unsubscribeContainerLogs, { streamId: sub.streamId })).ok).toBe(true);
    expect(await stop).toEqual({ streamId: sub.streamId });
  });

  describe('batched writes', () => {
    const changed = (state: ContainerStateService, m: { machineId: string }, p: SpecProject, containers: Container[], removed: string[] = []) =>
      state.changed(m.machineId, p.projectId, { containers, removed });

    test("one turn's reports share a batch; a machine's second report waits for the next one, so the later report wins, live in order", async () => {
      const state = t.app.get(ContainerStateService);
      const seen = record<{ machineId: string; containers: { id: string; state: string }[] }>(liveA, LiveServerEvents.containers);
      const before = state.batchesWritten;
      await Promise.all([
        changed(state, ma, a, [container(hex('1'), { state: 'running' })]),
        changed(state, mb, b, [container(hex('1'), { state: 'dead' })]),
        changed(state, ma, a, [container(hex('1'), { state: 'exited', exitCode: 3 })]),
      ]);
      expect(state.batchesWritten - before).toBe(2);
      expect((await rows(ma.machineId)).find((r) => r.id === hex('1'))).toEqual({ id: hex('1'), state: 'exited' });
      expect((await rows(mb.machineId)).find((r) => r.id === hex('1'))).toEqual({ id: hex('1'), state: 'dead' });
      await waitFor('both of A’s patches live', () => (seen.length >= 2 ? true : undefined));
      expect(seen.map((e) => [e.machineId, e.containers[0]!.state])).toEqual([
        [ma.machineId, 'running'],
        [ma.machineId, 'exited'],
      ]);
    });

    test("in one batch, B's snapshot sweeps and removals touch only B's rows, even for A's container ids", async () => {
      const state = t.app.get(ContainerStateService);
      const before = state.batchesWritten;
      await Promise.all([
        changed(state, ma, a, [container(hex('2'))]),
        state.snapshotPart(mb.machineId, b.projectId, { snapshotId: randomUUID(), containers: [container(hex('3'))], last: true }),
      ]);
      await Promise.all([changed(state, ma, a, [container(hex('3'), { state: 'paused' })]), changed(state, mb, b, [], [hex('1'), hex('2'), hex('3')])]);
      expect(state.batchesWritten - before).toBe(2);
      const mine = await rows(ma.machineId);
      expect(mine).toEqual(expect.arrayContaining([{ id: hex('1'), state: 'exited' }, { id: hex('2'), state: 'running' }, { id: hex('3'), state: 'paused' }]));
      expect(await rows(mb.machineId)).toEqual([]);
    });

    test("a report the database refuses fails its own ack; its batch-mates are stored and acknowledged, and nothing of it goes live", async () => {
      const state = t.app.get(ContainerStateService);
      // A real refusal by the database, for one report's row only.
      await t.db.query(
        database === 'mysql'
          ? "CREATE TRIGGER poison_container BEFORE INSERT ON containers FOR EACH ROW BEGIN IF NEW.name = 'poison' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'poisoned row'; END IF; END"
          : "CREATE TRIGGER poison_container BEFORE INSERT ON containers WHEN NEW.name = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END",
      );
      try {
        const seen = record<{ machineId: string; containers: { id: string }[] }>(liveA, LiveServerEvents.containers);
        const before = await rows(ma.machineId);
        const results = await Promise.allSettled([
          changed(state, ma, a, [container(hex('5')), container(hex('4'), { name: 'poison' })]),
          changed(state, mb, b, [container(hex('4'))]),
        ]);
        expect(results[0]).toMatchObject({ status: 'rejected', reason: expect.objectContaining({ message: expect.stringMatching(/poisoned row/) }) });
        expect(results[1]).toEqual({ status: 'fulfilled', value: undefined });
        // the refused report is one statement: none of its rows are stored
        expect(await rows(ma.machineId)).toEqual(before);
        expect(await rows(mb.machineId)).toEqual([{ id: hex('4'), state: 'running' }]);

        // the same over the sockets: A's ack says it was not stored, B's says it was
        const [ackA, ackB] = await Promise.all([
          emitWithAck<{ ok: boolean; error?: { code: string } }>(agentA, AgentEvents.containersChanged, { containers: [container(hex('6'), { name: 'poison' })], removed: [] }),
          emitWithAck<{ ok: boolean }>(agentB, AgentEvents.containersChanged, { containers: [container(hex('6'))], removed: [] }),
        ]);
        expect(ackA).toMatchObject({ ok: false, error: { code: 'service_unavailable' } });
        expect(ackB).toEqual({ ok: true });
        expect((await rows(ma.machineId)).map((r) => r.id)).not.toContain(hex('6'));
        expect((await rows(mb.machineId)).map((r) => r.id)).toContain(hex('6'));
        await emitWithAck(liveA, LiveClientEvents.subscribeProject, { projectId: a.projectId });
        const refused = [hex('4'), hex('5'), hex('6')];
        expect(seen.filter((e) => e.containers.some((c) => refused.includes(c.id)))).toEqual([]);
      } finally {
        await t.db.query('DROP TRIGGER poison_container');
      }
    });
  });
});
