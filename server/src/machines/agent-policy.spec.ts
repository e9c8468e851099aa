/**
 * The client policy on the server, on both databases with real sockets: the
 * policy an agent reports in its hello is stored on the machine and shown by
 * REST (and replaced at every hello); a malformed report is refused and
 * changes nothing; work the agent refused ends `refused` with its reason —
 * executions, per-machine deliveries and container operations — and stays
 * final (threat model T71–T74).
 */
import { AgentEvents, ServerToAgentEvents, type ContainerOperationDispatch, type DeliveryDispatch, type ReportedPolicy } from '@kapitan/shared';
import { bearer, createTestApp, describeBothDatabases, TestApp } from '../testing/test-app';
import { closeSockets, connectAgent, emitWithAck, enrolMachine, helloBody, nextEvent, runOn, setupProject, type SpecProject } from '../testing/sockets';

const POLICY: ReportedPolicy = {
  path: '/etc/kapitan/agent-policy.json',
  found: true,
  sha256: 'a'.repeat(64),
  effective: {
    scripts: { enabled: false, allowSha256: null },
    deploys: { enabled: true, pathPrefixes: ['/opt/app/'] },
    docker: { enabled: true, images: ['busybox:*'] },
    readOnly: false,
  },
};
const REASON = 'refused by the client policy (/etc/kapitan/agent-policy.json): scripts are disabled (scripts.enabled: false)';

describeBothDatabases('client policy (server side)', (database) => {
  let t: TestApp;
  let p: SpecProject;

  beforeAll(async () => {
    t = await createTestApp({ database });
    p = await setupProject(t, 'policy');
  });
  afterEach(() => closeSockets());
  afterAll(() => t?.close());

  const machine = async (machineId: string) => (await t.http.get(`/api/projects/${p.projectId}/machines/${machineId}`).set(bearer(p.owner.token)).expect(200)).body;

  async function online(policy: ReportedPolicy | undefined = POLICY) {
    const m = await enrolMachine(t, p);
    const socket = await connectAgent(t.url, m.credential);
    expect((await emitWithAck(socket, AgentEvents.hello, { ...helloBody(), ...(policy ? { policy } : {}) })).ok).toBe(true);
    return { ...m, socket };
  }

  test('the reported policy is stored on the machine and shown by REST; a later hello without one clears it', async () => {
    const m = await online();
    expect((await machine(m.machineId)).policy).toEqual(POLICY);
    const list = (await t.http.get(`/api/projects/${p.projectId}/machines`).set(bearer(p.owner.token)).expect(200)).body as { id: string; policy: unknown }[];
    expect(list.find((x) => x.id === m.machineId)!.policy).toEqual(POLICY);

    // An agent downgraded to one that reports nothing: shown as unknown, not as the old policy.
    const again = await connectAgent(t.url, m.credential);
    expect((await emitWithAck(again, AgentEvents.hello, helloBody())).ok).toBe(true);
    expect((await machine(m.machineId)).policy).toBeNull();
  });

  test.each([
    ['an unknown key', { ...POLICY, effective: { ...POLICY.effective, extra: true } }],
    ['a missing field', { ...POLICY, effective: { ...POLICY.effective, readOnly: undefined } }],
    ['a bad sha256', { ...POLICY, sha256: 'xyz' }],
    ['a path with NUL', { ...POLICY, path: '/etc/\0x' }],
  ])('a hello with a malformed policy (%s) is refused and changes nothing', async (_what, policy) => {
    const m = await enrolMachine(t, p);
    const socket = await connectAgent(t.url, m.credential);
    const ack = await emitWithAck(socket, AgentEvents.hello, { ...helloBody(), policy });
    expect(ack).toMatchObject({ ok: false, error: { code: 'validation_failed' } });
    const after = await machine(m.machineId);
    expect(after).toMatchObject({ status: 'offline', policy: null });
  });

  test('an execution the agent refused ends refused with the reason, never started, and stays final', async () => {
    const m = await online();
    const dispatched = nextEvent<{ executionId: string }>(m.socket, ServerToAgentEvents.dispatch);
    const executionId = await runOn(t, p, m.machineId);
    await dispatched;
    const finished = { executionId, status: 'refused', exitCode: null, signal: null, finishedAt: new Date().toISOString(), lastSeq: -1, reason: REASON };
    expect(await emitWithAck(m.socket, AgentEvents.executionFinished, finished)).toEqual({ ok: true });
    const e = (await t.http.get(`/api/executions/${executionId}`).set(bearer(p.owner.token)).expect(200)).body;
    expect(e).toMatchObject({ status: 'refused', reason: REASON, exitCode: null, startedAt: null, finishedAt: expect.any(String) });
    // A later report (a replayed or forged success) does not move a final status.
    await emitWithAck(m.socket, AgentEvents.executionFinished, { ...finished, status: 'succeeded', exitCode: 0, reason: null });
    expect((await t.http.get(`/api/executions/${executionId}`).set(bearer(p.owner.token)).expect(200)).body.status).toBe('refused');
    const listed = (await t.http.get(`/api/projects/${p.projectId}/executions?status=refused`).set(bearer(p.owner.token)).expect(200)).body;
    expect(JSON.stringify(listed)).toContain(executionId);
  });

  test("a delivery the agent refused ends refused for that machine, with the reason", async () => {
    const m = await online();
    const f = (await t.http.post(`/api/projects/${p.projectId}/files?kind=file&name=f`).set(bearer(p.owner.token)).set('Content-Type', 'application/octet-stream').send(Buffer.from('x')).expect(201)).body;
    const dispatched = nextEvent<DeliveryDispatch>(m.socket, ServerToAgentEvents.deliver);
    const created = (await t.http.post(`/api/projects/${p.projectId}/deploys`).set(bearer(p.owner.token)).send({ fileId: f.id, targets: { machineIds: [m.machineId] }, path: '/etc/x.conf' }).expect(201)).body;
    await dispatched;
    const reason = 'refused by the client policy (/etc/kapitan/agent-policy.json): /etc/x.conf is outside deploys.pathPrefixes (/opt/app/)';
    expect(await emitWithAck(m.socket, AgentEvents.deliveryFinished, { deliveryId: created.id, status: 'refused', reason })).toEqual({ ok: true });
    const d = (await t.http.get(`/api/deliveries/${created.id}`).set(bearer(p.owner.token)).expect(200)).body;
    expect(d.machines[0]).toMatchObject({ machineId: m.machineId, status: 'refused', reason, finishedAt: expect.any(String) });
    // Final: the file is no longer held for it.
    expect((await t.http.delete(`/api/files/${f.id}`).set(bearer(p.owner.token))).status).toBe(204);
  });

  test('a container operation the agent refused ends refused, the reason in its error', async () => {
    const m = await online();
    const dispatched = nextEvent<ContainerOperationDispatch>(m.socket, ServerToAgentEvents.containerOperation);
    const op = (await t.http.post(`/api/machines/${m.machineId}/containers`).set(bearer(p.owner.token)).send({ image: 'alpine:3' }).expect(202)).body;
    expect((await dispatched).operationId).toBe(op.id);
    const reason = 'refused by the client policy (/etc/kapitan/agent-policy.json): image alpine:3 does not match docker.images (busybox:*)';
    expect(await emitWithAck(m.socket, AgentEvents.containerOperationFinished, { operationId: op.id, status: 'refused', error: reason, containerId: null, finishedAt: new Date().toISOString() })).toEqual({ ok: true });
    const after = (await t.http.get(`/api/container-operations/${op.id}`).set(bearer(p.owner.token)).expect(200)).body;
    expect(after).toMatchObject({ status: 'refused', error: reason, finishedAt: expect.any(String) });
  });
});
