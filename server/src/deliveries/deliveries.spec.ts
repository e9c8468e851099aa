/**
 * Deploys and distributions on both databases, with a raw agent socket
 * standing in for the agent: a row per machine first, the push to online
 * machines and at the hello of the others, progress and one result per
 * machine (live to the project's room), the file held while pending and
 * downloadable only then; bad input is a 400 naming the field, another
 * project's file or machine a 404, and nothing is created.
 */
import {
  AgentEvents,
  agentFileContentPath,
  DeliverySchema,
  LiveClientEvents,
  LiveServerEvents,
  ServerToAgentEvents,
  type DeliveryDispatch,
  type LiveDeliveryEvent,
} from '@kapitan/shared';
import { randomBytes } from 'node:crypto';
import { bearer, createTestApp, describeBothDatabases, expectError, expectValidationError, signupUser, TestApp, waitFor } from '../testing/test-app';
import { DeliveryLifecycleService } from './delivery-lifecycle.service';
import { DeliveryEntity } from './delivery.entity';
import { closeSockets, connectAgent, connectLive, emitWithAck, enrolMachine, helloBody, nextEvent, setupProject, type SpecProject } from '../testing/sockets';

describeBothDatabases('deliveries', (database) => {
  let t: TestApp;
  let p: SpecProject;
  beforeAll(async () => {
    t = await createTestApp({ database });
    p = await setupProject(t);
  });
  afterEach(() => closeSockets());
  afterAll(() => t?.close());

  const upload = async (who: SpecProject, kind: string, bytes: Buffer = randomBytes(2000)): Promise<{ id: string; sha256: string; size: number }> =>
    (await t.http.post(`/api/projects/${who.projectId}/files?kind=${kind}&name=f`).set(bearer(who.owner.token)).set('Content-Type', 'application/octet-stream').send(bytes).expect(201)).body;
  const deploy = (body: object, token = p.owner.token, projectId = p.projectId) => t.http.post(`/api/projects/${projectId}/deploys`).set(bearer(token)).send(body);
  const count = async (): Promise<number> => Number((await t.db.query('SELECT COUNT(*) AS n FROM delivery_machines'))[0].n);
  /** A tar header with the ustar magic: what the store accepts as an image. */
  const tarball = () => {
    const b = Buffer.alloc(2048);
    b.write('ustar\x0000', 257, 'latin1');
    return b;
  };
  async function onlineAgent(project = p) {
    const m = await enrolMachine(t, project);
    const socket = await connectAgent(t.url, m.credential);
    expect((await emitWithAck(socket, AgentEvents.hello, helloBody())).ok).toBe(true);
    return { ...m, socket };
  }

  it('online: dispatched at once; the agent downloads it with its credential, reports progress and one result, live to the project room', async () => {
    const agent = await onlineAgent();
    const live = await connectLive(t.url, p.owner.token);
    expect((await emitWithAck(live, LiveClientEvents.subscribeProject, { projectId: p.projectId })).ok).toBe(true);
    const f = await upload(p, 'file');
    const dispatched = nextEvent<DeliveryDispatch>(agent.socket, ServerToAgentEvents.deliver);
    const succeeded = nextEvent<LiveDeliveryEvent>(live, LiveServerEvents.delivery, (e) => e.machine.status === 'succeeded');
    const res = await deploy({ fileId: f.id, targets: { machineIds: [agent.machineId] }, path: '/srv/app/config.json', mode: '0600', owner: 'app:app' });
    expect(res.status).toBe(201);
    const created = DeliverySchema.parse(res.body);
    expect(created).toMatchObject({ kind: 'deploy', path: '/srv/app/config.json', mode: 0o600, owner: 'app:app', file: { id: f.id, sha256: f.sha256, size: f.size } });
    expect(created.machines).toEqual([expect.objectContaining({ machineId: agent.machineId, status: 'dispatched', receivedBytes: 0, totalBytes: f.size })]);
    const d = await dispatched;
    expect(d).toEqual({ kind: 'deploy', deliveryId: created.id, file: { fileId: f.id, sha256: f.sha256, size: f.size }, path: '/srv/app/config.json', mode: 0o600, owner: 'app:app' });

    // Pending: the file is held, and this machine may download it.
    expectError(await t.http.delete(`/api/files/${f.id}`).set(bearer(p.owner.token)), 409, 'conflict');
    expect((await t.http.get(agentFileContentPath(f.id)).set(bearer(agent.credential))).status).toBe(200);

    expect((await emitWithAck(agent.socket, AgentEvents.deliveryProgress, { deliveryId: created.id, status: 'downloading', receivedBytes: 1000 })).ok).toBe(true);
    expect((await emitWithAck(agent.socket, AgentEvents.deliveryProgress, { deliveryId: created.id, status: 'writing', receivedBytes: f.size })).ok).toBe(true);
    // A late, out-of-order progress does not move it back.
    expect((await emitWithAck(agent.socket, AgentEvents.deliveryProgress, { deliveryId: created.id, status: 'downloading', receivedBytes: 10 })).ok).toBe(true);
    expect((await t.http.get(`/api/deliveries/${created.id}`).set(bearer(p.owner.token))).body.machines[0]).toMatchObject({ status: 'writing', receivedBytes: f.size });
    expect((await emitWithAck(agent.socket, AgentEvents.deliveryFinished, { deliveryId: created.id, status: 'succeeded', reason: null })).ok).toBe(true);
    expect((await succeeded).machine).toMatchObject({ deliveryId: created.id, status: 'succeeded', receivedBytes: f.size });
    // Applied once: a repeated (or contradicting) result changes nothing.
    expect((await emitWithAck(agent.socket, AgentEvents.deliveryFinished, { deliveryId: created.id, status: 'failed', reason: 'late' })).ok).toBe(true);
    const final = (await t.http.get(`/api/deliveries/${created.id}`).set(bearer(p.owner.token)).expect(200)).body;
    expect(final.machines[0]).toMatchObject({ status: 'succeeded', reason: null });
    expect(final.machines[0].finishedAt).not.toBeNull();

    // Over: no more downloads for it, and the file may go.
    expectError(await t.http.get(agentFileContentPath(f.id)).set(bearer(agent.credential)), 404, 'not_found');
    await t.http.delete(`/api/files/${f.id}`).set(bearer(p.owner.token)).expect(204);
    expect((await t.http.get(`/api/projects/${p.projectId}/deploys`).set(bearer(p.owner.token)).expect(200)).body.map((x: { id: string }) => x.id)).toContain(created.id);
  });

  it('offline: queued, then dispatched at the machine\'s hello; a failure is stored with its reason', async () => {
    const m = await enrolMachine(t, p);
    const f = await upload(p, 'script');
    const created = (await deploy({ fileId: f.id, targets: { machineIds: [m.machineId] }, path: '/opt/x.sh' }).expect(201)).body;
    expect(created.machines[0].status).toBe('queued');
    expect(created.mode).toBe(0o644);
    const socket = await connectAgent(t.url, m.credential);
    const dispatched = nextEvent<DeliveryDispatch>(socket, ServerToAgentEvents.deliver, (d) => d.deliveryId === created.id);
    expect((await emitWithAck(socket, AgentEvents.hello, helloBody())).ok).toBe(true);
    await dispatched;
    await waitFor('dispatched', async () => ((await t.http.get(`/api/deliveries/${created.id}`).set(bearer(p.owner.token))).body.machines[0].status === 'dispatched' ? true : undefined));
    const reason = 'refused: /opt is outside the directories this agent may write (KAPITAN_AGENT_DEPLOY_DIRS)';
    expect((await emitWithAck(socket, AgentEvents.deliveryFinished, { deliveryId: created.id, status: 'failed', reason })).ok).toBe(true);
    expect((await t.http.get(`/api/deliveries/${created.id}`).set(bearer(p.owner.token))).body.machines[0]).toMatchObject({ status: 'failed', reason });
  });

  it('a distribution sends an image; the loaded image id is stored with the result', async () => {
    const agent = await onlineAgent();
    const img = await upload(p, 'image', tarball());
    const dispatched = nextEvent<DeliveryDispatch>(agent.socket, ServerToAgentEvents.deliver);
    const created = (await t.http.post(`/api/projects/${p.projectId}/distributions`).set(bearer(p.owner.token)).send({ fileId: img.id, targets: { machineIds: [agent.machineId] } }).expect(201)).body;
    expect(await dispatched).toEqual({ kind: 'distribution', deliveryId: created.id, file: { fileId: img.id, sha256: img.sha256, size: img.size } });
    const machine = async () => (await t.http.get(`/api/deliveries/${created.id}`).set(bearer(p.owner.token))).body.machines[0];
    expect(await machine()).toMatchObject({ movedBytes: null, layers: null });
    // What moved, as the agent counts it: shown with the part; an impossible account is refused and changes nothing.
    const transfer = { movedBytes: 700, layers: { present: 1, total: 2 } };
    expect((await emitWithAck(agent.socket, AgentEvents.deliveryProgress, { deliveryId: created.id, status: 'loading', receivedBytes: img.size, transfer })).ok).toBe(true);
    expect(await machine()).toMatchObject({ status: 'loading', movedBytes: 700, layers: { present: 1, total: 2 } });
    for (const bad of [{ movedBytes: -1, layers: null }, { movedBytes: 1, layers: { present: 3, total: 2 } }, { movedBytes: 1, layers: { present: 1, total: 1000 } }, { movedBytes: 1 }]) {
      expect((await emitWithAck(agent.socket, AgentEvents.deliveryProgress, { deliveryId: created.id, status: 'loading', receivedBytes: img.size, transfer: bad })).ok).toBe(false);
    }
    expect(await machine()).toMatchObject({ movedBytes: 700, layers: { present: 1, total: 2 } });
    const imageId = `sha256:${'a'.repeat(64)}`;
    // More than the file is no honest count: bounded to its size.
    expect((await emitWithAck(agent.socket, AgentEvents.deliveryFinished, { deliveryId: created.id, status: 'succeeded', reason: null, imageId, transfer: { movedBytes: img.size * 5, layers: { present: 1, total: 2 } } })).ok).toBe(true);
    expect((await t.http.get(`/api/deliveries/${created.id}`).set(bearer(p.owner.token))).body).toMatchObject({
      kind: 'distribution',
      path: null,
      machines: [{ status: 'succeeded', imageId, movedBytes: img.size, layers: { present: 1, total: 2 } }],
    });
    expect((await t.http.get(`/api/projects/${p.projectId}/distributions`).set(bearer(p.owner.token))).body[0].id).toBe(created.id);
  });

  it('an agent reporting on another machine\'s delivery is refused and nothing changes', async () => {
    const a = await onlineAgent();
    const b = await onlineAgent();
    const f = await upload(p, 'file');
    const created = (await deploy({ fileId: f.id, targets: { machineIds: [a.machineId] }, path: '/srv/a' }).expect(201)).body;
    const ack = await emitWithAck(b.socket, AgentEvents.deliveryFinished, { deliveryId: created.id, status: 'failed', reason: 'not mine' });
    expect(ack).toMatchObject({ ok: false, error: { code: 'not_found' } });
    expectError(await t.http.get(agentFileContentPath(f.id)).set(bearer(b.credential)), 404, 'not_found');
    expect((await t.http.get(`/api/deliveries/${created.id}`).set(bearer(p.owner.token))).body.machines[0].status).toBe('dispatched');
  });

  it('past its expiry, a waiting part expires and a started one fails; a revoked machine\'s part fails at once; the file is free again', async () => {
    const waiting = await enrolMachine(t, p);
    const started = await onlineAgent();
    const f = await upload(p, 'file');
    const d = (await deploy({ fileId: f.id, targets: { machineIds: [waiting.machineId, started.machineId] }, path: '/srv/x' }).expect(201)).body;
    expect((await emitWithAck(started.socket, AgentEvents.deliveryProgress, { deliveryId: d.id, status: 'downloading', receivedBytes: 1 })).ok).toBe(true);
    expectError(await t.http.delete(`/api/files/${f.id}`).set(bearer(p.owner.token)), 409, 'conflict');
    await t.db.getRepository(DeliveryEntity).update({ id: d.id }, { expiresAt: new Date(Date.now() - 1000) });
    await t.app.get(DeliveryLifecycleService).sweep();
    const parts = (await t.http.get(`/api/deliveries/${d.id}`).set(bearer(p.owner.token))).body.machines as { machineId: string; status: string; reason: string }[];
    expect(parts.find((x) => x.machineId === waiting.machineId)).toMatchObject({ status: 'expired', reason: expect.stringContaining('offline') });
    expect(parts.find((x) => x.machineId === started.machineId)).toMatchObject({ status: 'failed', reason: expect.stringContaining('no result') });
    await t.http.delete(`/api/files/${f.id}`).set(bearer(p.owner.token)).expect(204);

    const g = await upload(p, 'file');
    const gone = await enrolMachine(t, p);
    const e = (await deploy({ fileId: g.id, targets: { machineIds: [gone.machineId] }, path: '/srv/y' }).expect(201)).body;
    await t.http.delete(`/api/projects/${p.projectId}/machines/${gone.machineId}`).set(bearer(p.owner.token)).expect(204);
    await waitFor('the revoked machine\'s part to fail', async () => {
      const m = (await t.http.get(`/api/deliveries/${e.id}`).set(bearer(p.owner.token))).body.machines[0];
      return m.status === 'failed' ? m : undefined;
    });
    await t.http.delete(`/api/files/${g.id}`).set(bearer(p.owner.token)).expect(204);
  });

  it('bad input: 400 naming the field; another project\'s file or machine 404; a viewer 403, a stranger 404; nothing created', async () => {
    const m = await enrolMachine(t, p);
    const f = await upload(p, 'file');
    const img = await upload(p, 'image', tarball());
    const other = await setupProject(t, 'other');
    const theirs = await upload(other, 'file');
    const theirMachine = await enrolMachine(t, other);
    const targets = { machineIds: [m.machineId] };
    const before = await count();
    for (const path of ['relative/x', '/srv/../etc/passwd', '/srv/./x', '/srv/dir/', `/srv/a\0b`, `/${'a'.repeat(1100)}`]) {
      expectValidationError(await deploy({ fileId: f.id, targets, path }), 'path');
    }
    for (const mode of ['4755', '0999', 'rwx', '01777']) expectValidationError(await deploy({ fileId: f.id, targets, path: '/srv/x', mode }), 'mode');
    for (const owner of ['root;rm', 'a:b:c', '', '../x']) expectValidationError(await deploy({ fileId: f.id, targets, path: '/srv/x', owner }), 'owner');
    expectValidationError(await deploy({ fileId: f.id, targets, path: '/srv/x', extra: 1 }), 'extra');
    expectValidationError(await deploy({ fileId: img.id, targets, path: '/srv/x' }), 'fileId');
    expectValidationError(await t.http.post(`/api/projects/${p.projectId}/distributions`).set(bearer(p.owner.token)).send({ fileId: f.id, targets }), 'fileId');
    expectError(await deploy({ fileId: theirs.id, targets, path: '/srv/x' }), 404, 'not_found');
    expectError(await deploy({ fileId: f.id, targets: { machineIds: [theirMachine.machineId] }, path: '/srv/x' }), 404, 'not_found');
    const viewer = await signupUser(t.http);
    await t.http.post(`/api/projects/${p.projectId}/members`).set(bearer(p.owner.token)).send({ email: viewer.email, role: 'viewer' }).expect(201);
    expectError(await deploy({ fileId: f.id, targets, path: '/srv/x' }, viewer.token), 403, 'forbidden');
    const stranger = await signupUser(t.http);
    expectError(await deploy({ fileId: f.id, targets, path: '/srv/x' }, stranger.token), 404, 'not_found');
    expect(await count()).toBe(before);
  });
});
