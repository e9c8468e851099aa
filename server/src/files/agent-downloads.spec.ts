import { agentFileContentPath } from '@kapitan/shared';
import { createHash, randomBytes } from 'node:crypto';
import { bearer, createTestApp, describeBothDatabases, expectError, TestApp } from '../testing/test-app';
import { enrolMachine, setupProject, type SpecProject } from '../testing/sockets';
import { AgentFileGrants } from './agent-file-grants';

function binary(res: NodeJS.ReadableStream, done: (err: Error | null, body: Buffer) => void): void {
  const parts: Buffer[] = [];
  res.on('data', (d: Buffer) => parts.push(d));
  res.on('end', () => done(null, Buffer.concat(parts)));
}

describeBothDatabases('agent downloads (GET /api/agent/files/:id/content)', (database) => {
  let t: TestApp;
  /** machineId → fileIds it is granted; stands in for a delivery feature's pending rows. */
  const granted = new Map<string, Set<string>>();
  beforeAll(async () => {
    t = await createTestApp({ database });
    t.app.get(AgentFileGrants).register('spec', async (machineId, fileId) => granted.get(machineId)?.has(fileId) ?? false);
  });
  afterAll(() => t?.close());

  const upload = async (p: SpecProject, bytes: Buffer): Promise<string> =>
    (await t.http.post(`/api/projects/${p.projectId}/files?kind=file&name=a.bin`).set(bearer(p.owner.token)).set('Content-Type', 'application/octet-stream').send(bytes).expect(201)).body.id;
  const grant = (machineId: string, fileId: string) => {
    let s = granted.get(machineId);
    if (!s) granted.set(machineId, (s = new Set()));
    s.add(fileId);
  };
  const get = (fileId: string, headers: Record<string, string> = {}) => t.http.get(agentFileContentPath(fileId)).set(headers).buffer(true).parse(binary as never);
  /** For refusals: the JSON error body. */
  const refused = (fileId: string, headers: Record<string, string> = {}) => t.http.get(agentFileContentPath(fileId)).set(headers);

  it('the machine credential as Bearer fetches a granted file of its project, whole or from an offset (206), with its sha256 as ETag', async () => {
    const p = await setupProject(t);
    const m = await enrolMachine(t, p);
    const bytes = randomBytes(10_000);
    const fileId = await upload(p, bytes);
    grant(m.machineId, fileId);
    const whole = await get(fileId, bearer(m.credential));
    expect(whole.status).toBe(200);
    expect(whole.body).toEqual(bytes);
    expect(whole.headers.etag).toBe(`"${createHash('sha256').update(bytes).digest('hex')}"`);
    const tail = await get(fileId, { ...bearer(m.credential), Range: 'bytes=4000-' });
    expect(tail.status).toBe(206);
    expect(tail.headers['content-range']).toBe('bytes 4000-9999/10000');
    expect(tail.body).toEqual(bytes.subarray(4000));
    const past = await refused(fileId, { ...bearer(m.credential), Range: 'bytes=10000-' });
    expectError(past, 416, 'validation_failed');
  });

  it('no credential, a malformed one, a user session, an API token or a revoked machine: 401, no bytes', async () => {
    const p = await setupProject(t);
    const m = await enrolMachine(t, p);
    const fileId = await upload(p, randomBytes(100));
    grant(m.machineId, fileId);
    const token = (await t.http.post('/api/tokens').set(bearer(p.owner.token)).send({ name: 'ci', projectId: p.projectId, role: 'owner' }).expect(201)).body.token as string;
    for (const headers of [{}, { Authorization: 'Bearer kpm_nonsense' }, { Authorization: m.credential }, bearer(p.owner.token), bearer(token)]) {
      expectError(await refused(fileId, headers), 401, 'unauthenticated');
    }
    await t.http.delete(`/api/projects/${p.projectId}/machines/${m.machineId}`).set(bearer(p.owner.token)).expect(204);
    expectError(await refused(fileId, bearer(m.credential)), 401, 'unauthenticated');
  });

  it('a file not granted to this machine, another project\'s file (even if granted), an unknown id: the same 404', async () => {
    const p = await setupProject(t);
    const other = await setupProject(t, 'other');
    const m = await enrolMachine(t, p);
    const m2 = await enrolMachine(t, p);
    const mine = await upload(p, randomBytes(100));
    const theirs = await upload(other, randomBytes(100));
    grant(m2.machineId, mine);
    grant(m.machineId, theirs);
    const notMine = await refused(mine, bearer(m.credential));
    const foreign = await refused(theirs, bearer(m.credential));
    const unknown = await refused('00000000-0000-4000-8000-000000000000', bearer(m.credential));
    for (const r of [notMine, foreign, unknown]) expectError(r, 404, 'not_found');
    expect(notMine.body.message).toBe(foreign.body.message);
    expect(notMine.body.message).toBe(unknown.body.message);
  });
});
