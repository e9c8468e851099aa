/**
 * A run made from a stored script (`fileId` instead of `script`): the
 * content is copied into the execution at creation, so what is queued runs
 * what was chosen whatever later happens to the file; bad references are a
 * 400 naming the field (or the 404 of a missing file) and create nothing.
 */
import { AgentEvents, LIMITS, ServerToAgentEvents, type ExecutionDispatch } from '@kapitan/shared';
import { createHash } from 'node:crypto';
import { bearer, createTestApp, describeBothDatabases, expectError, expectValidationError, TestApp } from '../testing/test-app';
import { closeSockets, connectAgent, emitWithAck, enrolMachine, helloBody, nextEvent, setupProject, type SpecProject } from '../testing/sockets';

describeBothDatabases('runs from a stored script file', (database) => {
  let t: TestApp;
  let p: SpecProject;
  let machineId: string;
  let credential: string;
  beforeAll(async () => {
    t = await createTestApp({ database, env: { KAPITAN_FILES_MAX_SCRIPT_BYTES: '1M' } });
    p = await setupProject(t);
    ({ machineId, credential } = await enrolMachine(t, p));
  });
  afterEach(() => closeSockets());
  afterAll(() => t?.close());

  const upload = async (who: SpecProject, kind: string, bytes: Buffer): Promise<{ id: string; sha256: string }> =>
    (await t.http.post(`/api/projects/${who.projectId}/files?kind=${kind}&name=s.sh`).set(bearer(who.owner.token)).set('Content-Type', 'application/octet-stream').send(bytes).expect(201)).body;
  const create = (body: object, who = p) => t.http.post(`/api/projects/${who.projectId}/executions`).set(bearer(who.owner.token)).send({ targets: { machineIds: [machineId] }, ...body });
  const count = async (): Promise<number> => Number((await t.db.query('SELECT COUNT(*) AS n FROM executions'))[0].n);

  it('the file\'s content is copied at creation: the dispatch on hello carries it even after the file was deleted, and the run names file and sha256', async () => {
    const text = '#!/bin/sh\necho from-file\n';
    const f = await upload(p, 'script', Buffer.from(text));
    const res = await create({ fileId: f.id }).expect(201);
    const id = res.body.executions[0].id;
    await t.http.delete(`/api/files/${f.id}`).set(bearer(p.owner.token)).expect(204);
    const e = (await t.http.get(`/api/executions/${id}`).set(bearer(p.owner.token)).expect(200)).body;
    expect(e).toMatchObject({ script: text, fileId: f.id, fileSha256: createHash('sha256').update(text).digest('hex') });
    const agent = await connectAgent(t.url, credential);
    const dispatched = nextEvent<ExecutionDispatch>(agent, ServerToAgentEvents.dispatch, (d) => d.executionId === id);
    expect((await emitWithAck(agent, AgentEvents.hello, helloBody())).ok).toBe(true);
    expect((await dispatched).script).toBe(text);
  });

  it('an inline script shows fileId and fileSha256 null', async () => {
    const id = (await create({ script: 'true' }).expect(201)).body.executions[0].id;
    expect((await t.http.get(`/api/executions/${id}`).set(bearer(p.owner.token))).body).toMatchObject({ fileId: null, fileSha256: null });
  });

  it('neither or both of script and fileId, a file of another kind, too large, not UTF-8, empty: 400 naming the field, nothing created', async () => {
    const before = await count();
    const script = await upload(p, 'script', Buffer.from('true\n'));
    expectValidationError(await create({}), 'script');
    expectValidationError(await create({ script: 'true', fileId: script.id }), 'fileId');
    const plain = await upload(p, 'file', Buffer.from('true\n'));
    expect(expectValidationError(await create({ fileId: plain.id }), 'fileId').message).toContain('kind file');
    const big = await upload(p, 'script', Buffer.alloc(LIMITS.scriptMaxBytes + 1, 0x41));
    expectValidationError(await create({ fileId: big.id }), 'fileId');
    const latin1 = await upload(p, 'script', Buffer.from([0x65, 0x63, 0x68, 0x6f, 0x20, 0xe9, 0x0a]));
    expect(expectValidationError(await create({ fileId: latin1.id }), 'fileId').message).toContain('UTF-8');
    const empty = await upload(p, 'script', Buffer.alloc(0));
    expectValidationError(await create({ fileId: empty.id }), 'fileId');
    expectValidationError(await create({ fileId: 'not-an-id' }), 'fileId');
    expect(await count()).toBe(before);
  });

  it('another project\'s file and an unknown id: 404, the same words, nothing created', async () => {
    const other = await setupProject(t, 'other');
    const theirs = await upload(other, 'script', Buffer.from('echo theirs\n'));
    const before = await count();
    const a = expectError(await create({ fileId: theirs.id }), 404, 'not_found');
    const b = expectError(await create({ fileId: '00000000-0000-4000-8000-000000000000' }), 404, 'not_found');
    expect(a.message).toBe(b.message);
    expect(await count()).toBe(before);
  });
});
