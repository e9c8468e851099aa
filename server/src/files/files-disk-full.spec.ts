import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bearer, createTestApp, describeBothDatabases, expectError, signupUser, TestApp } from '../testing/test-app';

/**
 * A full disk under the file store, for real: a 2 MiB tmpfs mounted as
 * KAPITAN_FILES_DIR. Needs root (mount); without it the suite is skipped
 * with the reason, and fails under CI=true.
 */
function mountTinyTmpfs(): { dir: string; unmount: () => void } | string {
  const dir = mkdtempSync(join(tmpdir(), 'kapitan-full-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return `cannot mount a tmpfs (${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}); needs root`;
  }
  return {
    dir,
    unmount: () => {
      spawnSync('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describeBothDatabases('files on a full disk', (database) => {
  let t: TestApp;
  let mount: ReturnType<typeof mountTinyTmpfs>;
  let token: string;
  let projectId: string;

  beforeAll(async () => {
    mount = mountTinyTmpfs();
    if (typeof mount === 'string') {
      if (process.env.CI === 'true') throw new Error(mount);
      console.warn(`[files on a full disk] skipped: ${mount}`);
      return;
    }
    t = await createTestApp({ database, env: { KAPITAN_FILES_DIR: join(mount.dir, 'store') } });
    const alice = await signupUser(t.http);
    token = alice.token;
    projectId = (await t.http.post('/api/projects').set(bearer(token)).send({ name: `p ${randomUUID().slice(0, 8)}` })).body.id;
  });
  afterAll(async () => {
    await t?.close();
    if (mount && typeof mount !== 'string') mount.unmount();
  });

  const skip = () => typeof mount === 'string';
  const store = () => join((mount as { dir: string }).dir, 'store');
  const tmpLeft = () => readdirSync(join(store(), 'tmp'));
  const fileRows = async () => (await t.db.query('SELECT id FROM files WHERE projectId = ?', [projectId])).length as number;
  const raw = (body: Buffer, name: string) =>
    t.http.post(`/api/projects/${projectId}/files?kind=file&name=${name}`).set(bearer(token)).set('Content-Type', 'application/octet-stream').send(body);

  it('a raw upload bigger than the free space → 507, no temp file, no row; the server keeps working', async () => {
    if (skip()) return;
    expectError(await raw(randomBytes(3 * 1024 * 1024), 'big'), 507, 'insufficient_storage');
    expect(tmpLeft()).toEqual([]);
    expect(await fileRows()).toBe(0);
    const small = randomBytes(1000);
    const ok = await raw(small, 'small');
    expect(ok.status).toBe(201);
    expect(ok.body.sha256).toBe(sha(small));
    expect((await t.http.delete(`/api/files/${ok.body.id}`).set(bearer(token))).status).toBe(204);
  });

  it('multipart the same: 507, nothing kept', async () => {
    if (skip()) return;
    const res = await t.http.post(`/api/projects/${projectId}/files`).set(bearer(token)).field('kind', 'file').attach('file', randomBytes(3 * 1024 * 1024), 'big');
    expectError(res, 507, 'insufficient_storage');
    expect(tmpLeft()).toEqual([]);
    expect(await fileRows()).toBe(0);
  });

  it('a resumable upload that cannot fit → 507 at creation; a chunk that hits the full disk → 507, offset and bytes unchanged', async () => {
    if (skip()) return;
    expectError(await t.http.post(`/api/projects/${projectId}/uploads`).set(bearer(token)).send({ kind: 'file', name: 'x', size: 3 * 1024 * 1024 }), 507, 'insufficient_storage');
    const u = await t.http.post(`/api/projects/${projectId}/uploads`).set(bearer(token)).send({ kind: 'file', name: 'x', size: 1536 * 1024 });
    expect(u.status).toBe(201);
    // Another upload takes the room meanwhile.
    const other = await raw(randomBytes(1024 * 1024), 'other');
    expect(other.status).toBe(201);
    const put = await t.http
      .put(`/api/uploads/${u.body.id}?offset=0`)
      .set(bearer(token))
      .set('Content-Type', 'application/octet-stream')
      .send(randomBytes(1536 * 1024));
    expectError(put, 507, 'insufficient_storage');
    expect(statSync(join(store(), 'uploads', `${u.body.id}.part`)).size).toBe(0);
    expect((await t.http.get(`/api/uploads/${u.body.id}`).set(bearer(token))).body.offset).toBe(0);
    // Room again: the same upload goes on from where it was.
    expect((await t.http.delete(`/api/files/${other.body.id}`).set(bearer(token))).status).toBe(204);
    const bytes = randomBytes(1536 * 1024);
    expect((await t.http.put(`/api/uploads/${u.body.id}?offset=0`).set(bearer(token)).set('Content-Type', 'application/octet-stream').send(bytes)).status).toBe(200);
    const done = await t.http.post(`/api/uploads/${u.body.id}/complete`).set(bearer(token)).send({ sha256: sha(bytes) });
    expect(done.status).toBe(201);
  });
});
