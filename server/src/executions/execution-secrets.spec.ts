/**
 * Runs that reference project secrets, on both databases, with real
 * socket.io clients as agent and dashboard: the names are stored and shown,
 * the values travel only in the dispatch (also a redelivery at hello), and
 * output the agent sends in clear is masked before it is forwarded or stored
 * (threat model T48). Bad references name the field and create nothing; a
 * secret of another project is as unknown as one that does not exist.
 */
import { AgentEvents, LiveClientEvents, LiveServerEvents, type ExecutionDispatch, type LiveOutputEvent } from '@kapitan/shared';
import type { Socket } from 'socket.io-client';
import { bearer, createTestApp, describeBothDatabases, expectError, expectValidationError, signupUser, TestApp, waitFor } from '../testing/test-app';
import { closeSockets, connectAgent, connectLive, emitWithAck, enrolMachine, helloBody, nextEvent, setupProject, type SpecProject } from '../testing/sockets';

const VALUE = 'pa55-w0rd-9f3b1c7e';
const ROTATED = 'rotated-7d1e44a0b2';

describeBothDatabases('execution secrets', (database) => {
  let t: TestApp;
  let p: SpecProject;
  let other: SpecProject;
  let viewer: string;
  let machine: { machineId: string; credential: string };

  const count = async (): Promise<number> => Number((await t.db.query('SELECT COUNT(*) AS n FROM executions'))[0].n);
  const post = (body: object, token = p.owner.token) => t.http.post(`/api/projects/${p.projectId}/executions`).set(bearer(token)).send(body);
  const putSecret = (project: SpecProject, name: string, value: string) =>
    t.http.post(`/api/projects/${project.projectId}/secrets`).set(bearer(project.owner.token)).send({ name, value }).expect(201);
  const target = () => ({ machineIds: [machine.machineId] });

  /** An agent socket that said hello, and every dispatch it receives. */
  async function online(): Promise<{ socket: Socket; dispatches: ExecutionDispatch[] }> {
    const socket = await connectAgent(t.url, machine.credential);
    const dispatches: ExecutionDispatch[] = [];
    socket.on('execution:dispatch', (d: ExecutionDispatch) => dispatches.push(d));
    expect(await emitWithAck(socket, AgentEvents.hello, helloBody())).toMatchObject({ ok: true });
    return { socket, dispatches };
  }

  beforeAll(async () => {
    t = await createTestApp({ database });
    p = await setupProject(t, 'secrets-runs');
    other = await setupProject(t, 'another');
    const v = await signupUser(t.http);
    viewer = v.token;
    await t.http.post(`/api/projects/${p.projectId}/members`).set(bearer(p.owner.token)).send({ email: v.email, role: 'viewer' }).expect(201);
    machine = await enrolMachine(t, p);
    await putSecret(p, 'DB_PASSWORD', VALUE);
    await putSecret(other, 'DB_PASSWORD', 'not-this-one-0000');
    await putSecret(other, 'ONLY_THERE', 'elsewhere-1111');
  });
  afterEach(() => closeSockets());
  afterAll(() => t?.close());

  test('bad secret references → 400 naming secrets, nothing created (another project’s secret is unknown)', async () => {
    const before = await count();
    const ok = { script: 'true', targets: target() };
    const unknown = expectValidationError(await post({ ...ok, secrets: ['NOPE'] }), 'secrets');
    expect(unknown.message).toContain('NOPE');
    const foreign = expectValidationError(await post({ ...ok, secrets: ['ONLY_THERE'] }), 'secrets');
    expect(foreign.message).toBe('unknown secret: ONLY_THERE');
    const clash = expectValidationError(await post({ ...ok, env: { DB_PASSWORD: 'x' }, secrets: ['DB_PASSWORD'] }), 'secrets');
    expect(clash.details!.find((d) => d.path === 'secrets')!.message).toContain('DB_PASSWORD is also set in env');
    expectValidationError(await post({ ...ok, secrets: ['DB_PASSWORD', 'DB_PASSWORD'] }), 'secrets');
    expectValidationError(await post({ ...ok, secrets: ['db-password'] }), 'secrets.0');
    expectValidationError(await post({ ...ok, secrets: 'DB_PASSWORD' }), 'secrets');
    expectValidationError(await post({ ...ok, secrets: Array.from({ length: 65 }, (_, i) => `S${i}`) }), 'secrets');
    expectError(await post({ ...ok, secrets: ['DB_PASSWORD'] }, viewer), 403);
    expect(await count()).toBe(before);
  });

  test('the dispatch carries the value; the execution shows only the name, to the owner and a viewer alike; the row holds no value', async () => {
    const agent = await online();
    const res = await post({ script: 'echo "$DB_PASSWORD"', env: { MODE: 'x' }, secrets: ['DB_PASSWORD'], targets: target() }).expect(201);
    const id = res.body.executions[0].id as string;
    const d = await waitFor('the dispatch', () => agent.dispatches.find((x) => x.executionId === id));
    expect(d).toMatchObject({ env: { MODE: 'x' }, secretEnv: { DB_PASSWORD: VALUE }, masks: [VALUE] });
    for (const token of [p.owner.token, viewer]) {
      const e = await t.http.get(`/api/executions/${id}`).set(bearer(token)).expect(200);
      expect(e.body).toMatchObject({ secrets: ['DB_PASSWORD'], env: { MODE: 'x' } });
      expect(JSON.stringify(e.body)).not.toContain(VALUE);
      const list = await t.http.get(`/api/projects/${p.projectId}/executions`).set(bearer(token)).expect(200);
      expect(JSON.stringify(list.body)).not.toContain(VALUE);
    }
    const rows: unknown[] = await t.db.query('SELECT * FROM executions WHERE id = ?', [id]);
    expect(JSON.stringify(rows)).toContain('DB_PASSWORD');
    expect(JSON.stringify(rows)).not.toContain(VALUE);
    // a run without secrets is dispatched as before: no secret fields at all
    const plain = (await post({ script: 'true', targets: target() }).expect(201)).body.executions[0].id as string;
    const pd = await waitFor('the plain dispatch', () => agent.dispatches.find((x) => x.executionId === plain));
    expect(pd).not.toHaveProperty('secretEnv');
    expect(pd).not.toHaveProperty('masks');
    expect((await t.http.get(`/api/executions/${plain}`).set(bearer(viewer)).expect(200)).body.secrets).toEqual([]);
  });

  test('output an agent sends in clear is masked before the live forward and before it is stored', async () => {
    const agent = await online();
    const id = (await post({ script: 'x', secrets: ['DB_PASSWORD'], targets: target() }).expect(201)).body.executions[0].id as string;
    await waitFor('the dispatch', () => agent.dispatches.find((x) => x.executionId === id));
    const live = await connectLive(t.url, viewer);
    expect(await emitWithAck(live, LiveClientEvents.subscribeExecution, { executionId: id })).toMatchObject({ ok: true });
    const forwarded = nextEvent<LiveOutputEvent>(live, LiveServerEvents.output, (e) => e.executionId === id);
    expect(await emitWithAck(agent.socket, AgentEvents.executionStarted, { executionId: id, startedAt: new Date().toISOString() })).toMatchObject({ ok: true });
    const b64 = Buffer.from(VALUE).toString('base64');
    const chunks = [
      { seq: 0, stream: 'stdout', data: `pw=${VALUE}\n` },
      { seq: 1, stream: 'stderr', data: `b64=${b64}\n` },
    ];
    expect(await emitWithAck(agent.socket, AgentEvents.executionOutput, { executionId: id, chunks })).toMatchObject({ ok: true, stored: 2 });
    const seen = await forwarded;
    expect(JSON.stringify(seen)).not.toContain(VALUE);
    expect(seen.chunks[0]).toEqual({ seq: 0, stream: 'stdout', data: 'pw=***\n' });
    const log = await t.http.get(`/api/executions/${id}/log`).set(bearer(viewer)).set('accept', 'text/plain').expect(200);
    expect(log.text).toBe('pw=***\nb64=***\n');
    const stored: unknown[] = await t.db.query('SELECT * FROM execution_chunks WHERE executionId = ?', [id]);
    expect(JSON.stringify(stored)).not.toContain(VALUE);
    expect(JSON.stringify(stored)).not.toContain(b64.slice(0, 16));
  });

  test('redelivery at hello resolves the secret again (a rotated value goes out); one deleted meanwhile fails the run, which is never sent', async () => {
    // the machine is offline (the last test's socket closed): both runs wait queued
    await waitFor('the machine offline', async () => {
      const m = (await t.http.get(`/api/projects/${p.projectId}/machines/${machine.machineId}`).set(bearer(viewer)).expect(200)).body;
      return m.status === 'offline' ? m : undefined;
    });
    const keep = (await post({ script: 'a', secrets: ['DB_PASSWORD'], targets: target() }).expect(201)).body.executions[0];
    await putSecret(p, 'GONE_SOON', 'short-lived-2222');
    const doomed = (await post({ script: 'b', secrets: ['GONE_SOON', 'DB_PASSWORD'], targets: target() }).expect(201)).body.executions[0];
    expect([keep.status, doomed.status]).toEqual(['queued', 'queued']);
    await t.http.put(`/api/projects/${p.projectId}/secrets/DB_PASSWORD`).set(bearer(p.owner.token)).send({ value: ROTATED }).expect(200);
    await t.http.delete(`/api/projects/${p.projectId}/secrets/GONE_SOON`).set(bearer(p.owner.token)).expect(204);

    const agent = await online();
    const d = await waitFor('the redelivered dispatch', () => agent.dispatches.find((x) => x.executionId === keep.id));
    expect(d.secretEnv).toEqual({ DB_PASSWORD: ROTATED });
    const failed = await waitFor('the doomed run to fail', async () => {
      const e = (await t.http.get(`/api/executions/${doomed.id}`).set(bearer(viewer)).expect(200)).body;
      return e.status === 'failed' ? e : undefined;
    });
    expect(failed.reason).toContain('GONE_SOON');
    expect(failed.startedAt).toBeNull();
    expect(agent.dispatches.map((x) => x.executionId)).not.toContain(doomed.id);
  });
});
