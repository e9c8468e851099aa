import { FILE_LIMITS, StoredFileSchema, UploadSchema } from '@kapitan/shared';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join, relative } from 'node:path';
import { bearer, createTestApp, describeBothDatabases, expectError, expectValidationError, signupUser, TestApp, waitFor } from '../testing/test-app';
import { FileReferences } from './file-references';
import { FilesService } from './files.service';
import { ResumableUploadsService } from './resumable-uploads.service';

type Person = Awaited<ReturnType<typeof signupUser>>;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Every file under `dir`, relative to it. */
function walk(dir: string, base = dir): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name), base) : [relative(base, join(dir, e.name))],
  );
}

/** A minimal tar archive (one member), enough to pass as an image: ustar magic at 257. */
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

/**
 * A hand-made HTTP/1.1 request on a raw socket, to send what supertest will
 * not: a Content-Length that lies, a body cut off half-way. Resolves with the
 * status line's code (or null when the server answered nothing) once the
 * connection ends.
 */
function rawRequest(
  url: string,
  head: string,
  body: Buffer,
  opts: { end?: 'end' | 'destroy' | 'wait'; afterBody?: (s: net.Socket) => void } = {},
): Promise<{ status: number | null; text: string }> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(port), '127.0.0.1');
    let text = '';
    s.on('data', (d) => (text += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : null, text });
    });
    s.on('connect', () => {
      s.write(head.replace(/\n/g, '\r\n') + '\r\n');
      s.write(body, () => {
        if (opts.end === 'destroy') s.destroy();
        else if (opts.end === 'end') s.end();
        opts.afterBody?.(s);
      });
    });
    setTimeout(() => reject(new Error('raw request did not finish')), 20_000).unref();
  });
}

describeBothDatabases('files', (database) => {
  let t: TestApp;
  let filesDir: string;
  beforeAll(async () => {
    t = await createTestApp({ database, env: { KAPITAN_FILES_MAX_SCRIPT_BYTES: '64K', KAPITAN_FILES_MAX_FILE_BYTES: '4M' } });
    filesDir = t.config.files.dir;
  });
  afterAll(() => t?.close());

  async function project(owner: Person): Promise<string> {
    const res = await t.http.post('/api/projects').set(bearer(owner.token)).send({ name: `p ${randomUUID().slice(0, 8)}` });
    expect(res.status).toBe(201);
    return res.body.id;
  }
  async function addMember(owner: Person, projectId: string, who: Person, role: 'owner' | 'operator' | 'viewer') {
    const res = await t.http.post(`/api/projects/${projectId}/members`).set(bearer(owner.token)).send({ email: who.email, role });
    expect(res.status).toBe(201);
  }
  const rawUpload = (who: Person, projectId: string, body: Buffer, query: string) =>
    t.http.post(`/api/projects/${projectId}/files?${query}`).set(bearer(who.token)).set('Content-Type', 'application/octet-stream').send(body);
  const rows = async (projectId: string): Promise<{ id: string; name: string; sha256: string }[]> =>
    t.db.query('SELECT id, name, sha256 FROM files WHERE projectId = ? ORDER BY createdAt', [projectId]);
  const tmpFiles = () => walk(join(filesDir, 'tmp'));
  const blobs = () => walk(join(filesDir, 'sha256'));
  /** Nothing staged is left behind (the temp directory empties once a refused upload is cleaned up). */
  const expectNoTemp = () => waitFor('the temp directory to be empty', () => (tmpFiles().length === 0 ? true : undefined), 5_000);

  describe('upload, list, read, download, delete', () => {
    it('a raw body: 201 with the stored shape, the bytes content-addressed on disk, listed and readable', async () => {
      const alice = await signupUser(t.http);
      const id = await project(alice);
      const bytes = randomBytes(5000);
      const res = await rawUpload(alice, id, bytes, 'kind=file&name=app.bin');
      expect(res.status).toBe(201);
      const f = StoredFileSchema.strict().parse(res.body);
      expect(f).toMatchObject({ name: 'app.bin', kind: 'file', size: 5000, sha256: sha(bytes), projectId: id, uploadedBy: { userId: alice.user.id, email: alice.email } });
      expect(readFileSync(join(filesDir, 'sha256', f.sha256.slice(0, 2), f.sha256))).toEqual(bytes);

      const list = await t.http.get(`/api/projects/${id}/files`).set(bearer(alice.token));
      expect(list.status).toBe(200);
      expect(list.body).toEqual([f]);
      expect((await t.http.get(`/api/files/${f.id}`).set(bearer(alice.token))).body).toEqual(f);

      const content = await t.http.get(`/api/files/${f.id}/content`).set(bearer(alice.token)).buffer(true).parse(binary as never);
      expect(content.status).toBe(200);
      expect(content.body).toEqual(bytes);
      expect(content.headers['content-length']).toBe('5000');
      expect(content.headers['etag']).toBe(`"${f.sha256}"`);
      expect(content.headers['accept-ranges']).toBe('bytes');
      expect(content.headers['content-disposition']).toContain('filename="app.bin"');
      const again = await t.http.get(`/api/files/${f.id}/content`).set(bearer(alice.token)).set('If-None-Match', `"${f.sha256}"`);
      expect(again.status).toBe(304);
    });

    it('multipart: kind, name, file; without name the part\'s filename (its last segment) is the name', async () => {
      const alice = await signupUser(t.http);
      const id = await project(alice);
      const script = Buffer.from('#!/bin/sh\necho hi\n');
      const named = await t.http.post(`/api/projects/${id}/files`).set(bearer(alice.token)).field('kind', 'script').field('name', 'hello.sh').attach('file', script, 'x.sh');
      expect(named.status).toBe(201);
      expect(StoredFileSchema.strict().parse(named.body)).toMatchObject({ name: 'hello.sh', kind: 'script', size: script.length, sha256: sha(script) });
      const unnamed = await t.http.post(`/api/projects/${id}/files`).set(bearer(alice.token)).field('kind', 'file').attach('file', script, '../../../etc/cron.d/evil');
      expect(unnamed.status).toBe(201);
      expect(unnamed.body.name).toBe('evil');
    });

    it('the same bytes twice: two files, one blob; the blob goes only with the last row', async () => {
      const alice = await signupUser(t.http);
      const a = await project(alice);
      const b = await project(alice);
      const bytes = randomBytes(3000);
      const first = (await rawUpload(alice, a, bytes, 'kind=file&name=one')).body;
      const second = (await rawUpload(alice, b, bytes, 'kind=file&name=two')).body;
      expect(first.sha256).toBe(second.sha256);
      expect(first.id).not.toBe(second.id);
      const blob = join(filesDir, 'sha256', first.sha256.slice(0, 2), first.sha256);
      expect(blobs().filter((p) => p.endsWith(first.sha256))).toHaveLength(1);
      expect((await t.http.delete(`/api/files/${first.id}`).set(bearer(alice.token))).status).toBe(204);
      expect(existsSync(blob)).toBe(true);
      const still = await t.http.get(`/api/files/${second.id}/content`).set(bearer(alice.token)).buffer(true).parse(binary as never);
      expect(still.body).toEqual(bytes);
      expect((await t.http.delete(`/api/files/${second.id}`).set(bearer(alice.token))).status).toBe(204);
      expect(existsSync(blob)).toBe(false);
      expectError(await t.http.get(`/api/files/${second.id}`).set(bearer(alice.token)), 404, 'not_found');
      expectError(await t.http.delete(`/api/files/${second.id}`).set(bearer(alice.token)), 404, 'not_found');
    });

    it('an empty file is a file', async () => {
      const alice = await signupUser(t.http);
      const id = await project(alice);
      const res = await rawUpload(alice, id, Buffer.alloc(0), 'kind=file&name=empty');
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ size: 0, sha256: sha(Buffer.alloc(0)) });
      const content = await t.http.get(`/api/files/${res.body.id}/content`).set(bearer(alice.token)).buffer(true).parse(binary as never);
      expect(content.status).toBe(200);
      expect(content.body).toEqual(Buffer.alloc(0));
      expectError(await t.http.get(`/api/files/${res.body.id}/content`).set(bearer(alice.token)).set('Range', 'bytes=0-0'), 416);
    });

    it('a sha256 the client gives must match the bytes (400 naming sha256, nothing kept)', async () => {
      const alice = await signupUser(t.http);
      const id = await project(alice);
      const bytes = randomBytes(100);
      expectValidationError(await rawUpload(alice, id, bytes, `kind=file&name=x&sha256=${'0'.repeat(64)}`), 'sha256');
      expect(await rows(id)).toEqual([]);
      await expectNoTemp();
      expect(blobs().some((p) => p.endsWith(sha(bytes)))).toBe(false);
      expect((await rawUpload(alice, id, bytes, `kind=file&name=x&sha256=${sha(bytes).toUpperCase()}`)).status).toBe(201);
    });

    it('an image must be a tar archive as docker save writes it', async () => {
      const alice = await signupUser(t.http);
      const id = await project(alice);
      expectValidationError(await rawUpload(alice, id, randomBytes(2048), 'kind=image&name=img.tar'), 'kind');
      expect(await rows(id)).toEqual([]);
      await expectNoTemp();
      const tar = tarball(Buffer.from('[]'));
      expect((await rawUpload(alice, id, tar, 'kind=image&name=img.tar')).status).toBe(201);
    });
  });

  it('a deleted project\'s files go with it; their blobs are swept unless another project has the same bytes', async () => {
    const alice = await signupUser(t.http);
    const doomed = await project(alice);
    const kept = await project(alice);
    const shared = randomBytes(700);
    const only = randomBytes(800);
    await rawUpload(alice, doomed, shared, 'kind=file&name=shared');
    await rawUpload(alice, kept, shared, 'kind=file&name=shared');
    await rawUpload(alice, doomed, only, 'kind=file&name=only');
    expect((await t.http.delete(`/api/projects/${doomed}`).set(bearer(alice.token))).status).toBe(204);
    expect(await rows(doomed)).toEqual([]);
    const removed = await t.app.get(FilesService).sweepOrphanBlobs(0);
    expect(removed).toContain(sha(only));
    expect(removed).not.toContain(sha(shared));
    expect(blobs().some((p) => p.endsWith(sha(only)))).toBe(false);
    expect(blobs().some((p) => p.endsWith(sha(shared)))).toBe(true);
  });

  describe('Range', () => {
    let alice: Person;
    let fileId: string;
    const bytes = randomBytes(1000);
    beforeAll(async () => {
      alice = await signupUser(t.http);
      const id = await project(alice);
      fileId = (await rawUpload(alice, id, bytes, 'kind=file&name=r')).body.id;
    });
    const get = (range: string) => t.http.get(`/api/files/${fileId}/content`).set(bearer(alice.token)).set('Range', range).buffer(true).parse(binary as never);

    it.each([
      ['bytes=0-9', 0, 9],
      ['bytes=990-', 990, 999],
      ['bytes=-5', 995, 999],
      ['bytes=500-5000', 500, 999],
      ['bytes=-5000', 0, 999],
    ])('%s → 206 with those bytes and Content-Range', async (range, start, end) => {
      const res = await get(range);
      expect(res.status).toBe(206);
      expect(res.headers['content-range']).toBe(`bytes ${start}-${end}/1000`);
      expect(res.headers['content-length']).toBe(String(end - start + 1));
      expect(res.body).toEqual(bytes.subarray(start, end + 1));
    });

    it.each(['bytes=1000-', 'bytes=5-2', 'bytes=0-1,5-6', 'items=0-5', 'bytes=-0', 'bytes=abc', 'bytes=-'])('%s → 416 with Content-Range bytes */1000', async (range) => {
      const res = await get(range);
      expectError({ ...res, body: JSON.parse(res.body.toString()) }, 416);
      expect(res.headers['content-range']).toBe('bytes */1000');
    });
  });

  describe('names', () => {
    it.each([
      ['../../../../etc/passwd', 'passwd'],
      ['/etc/shadow', 'shadow'],
      ['C:\\Windows\\evil.bat', 'evil.bat'],
      ['  spaced name.txt ', 'spaced name.txt'],
      ['ünïcødé 文件.sh', 'ünïcødé 文件.sh'],
    ])('%j is kept as the display name %j, and only content-addressed paths are written', async (given, shown) => {
      const alice = await signupUser(t.http);
      const id = await project(alice);
      const before = walk(t.config.dataDir);
      const res = await rawUpload(alice, id, randomBytes(10), `kind=file&name=${encodeURIComponent(given)}`);
      expect(res.status).toBe(201);
      expect(res.body.name).toBe(shown);
      const added = walk(t.config.dataDir).filter((p) => !before.includes(p) && !/kapitan\.sqlite/.test(p));
      expect(added).toEqual([join('files', 'sha256', res.body.sha256.slice(0, 2), res.body.sha256)]);
    });

    it.each([
      ['a NUL byte', 'a\0b'],
      ['a newline', 'a\nb'],
      ['an escape sequence', 'a\x1b[31mred'],
      ['DEL', 'a\x7f'],
      ['10,000 characters', 'x'.repeat(10_000)],
      ['256 characters', 'y'.repeat(256)],
      ['a directory', '../..'],
      ['nothing', ''],
    ])('%s → 400 naming name, nothing kept', async (_, given) => {
      const alice = await signupUser(t.http);
      const id = await project(alice);
      expectValidationError(await rawUpload(alice, id, randomBytes(10), `kind=file&name=${encodeURIComponent(given)}`), 'name');
      const multipart = await t.http.post(`/api/projects/${id}/files`).set(bearer(alice.token)).field('kind', 'file').field('name', given.slice(0, 4000)).attach('file', randomBytes(10), 'ok');
      expectValidationError(multipart, 'name');
      expect(await rows(id)).toEqual([]);
      await expectNoTemp();
    });
  });

  describe('bad requests change nothing', () => {
    let alice: Person;
    let id: string;
    beforeAll(async () => {
      alice = await signupUser(t.http);
      id = await project(alice);
    });
    afterEach(async () => {
      expect(await rows(id)).toEqual([]);
      await expectNoTemp();
    });

    it('missing or unknown kind → 400 naming kind', async () => {
      expectValidationError(await rawUpload(alice, id, randomBytes(10), 'name=x'), 'kind');
      expectValidationError(await rawUpload(alice, id, randomBytes(10), 'kind=binary&name=x'), 'kind');
      expectValidationError(await rawUpload(alice, id, randomBytes(10), 'kind=file&name=x&path=/etc'), 'path');
    });

    const post = () => t.http.post(`/api/projects/${id}/files`).set(bearer(alice.token));
    it.each([
      ['kind after the file', 'kind', () => post().attach('file', randomBytes(10), 'a').field('kind', 'file')],
      ['a second file', 'file', () => post().field('kind', 'file').attach('file', randomBytes(10), 'a').attach('file', randomBytes(10), 'b')],
      ['an unknown field', 'path', () => post().field('kind', 'file').field('path', '/etc').attach('file', randomBytes(10), 'a')],
      ['no file', 'file', () => post().field('kind', 'file').field('name', 'x')],
      ['the file in another field', 'other', () => post().field('kind', 'file').attach('other', randomBytes(10), 'a')],
    ])('multipart with %s → 400 naming %s', async (_, field, send) => {
      expectValidationError(await send(), field);
    });

    it('another content type → 415 naming content-type; a JSON body is not an upload', async () => {
      const res = await t.http.post(`/api/projects/${id}/files`).set(bearer(alice.token)).set('Content-Type', 'text/plain').send('hello');
      expect(expectError(res, 415).details?.[0].path).toBe('content-type');
      expectError(await t.http.post(`/api/projects/${id}/files`).set(bearer(alice.token)).send({ kind: 'file', name: 'x' }), 415);
    });

    it('over the size limit by Content-Length → 413 before the body is read', async () => {
      const res = await rawUpload(alice, id, randomBytes(64 * 1024 + 1), 'kind=script&name=big.sh');
      expectError(res, 413, 'payload_too_large');
      // The limit is per kind: the same bytes are a fine file.
      const ok = await rawUpload(alice, id, randomBytes(64 * 1024 + 1), 'kind=file&name=big.bin');
      expect(ok.status).toBe(201);
      expect((await t.http.delete(`/api/files/${ok.body.id}`).set(bearer(alice.token))).status).toBe(204);
    });

    it('over the size limit with no Content-Length (chunked) → 413 once the limit is passed', async () => {
      const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request(`${t.url}/api/projects/${id}/files?kind=script&name=s`, {
          method: 'POST',
          headers: { ...bearer(alice.token), 'Content-Type': 'application/octet-stream', 'Transfer-Encoding': 'chunked' },
        });
        req.on('response', (r) => {
          let body = '';
          r.on('data', (d) => (body += d));
          r.on('end', () => resolve({ status: r.statusCode!, body }));
        });
        req.on('error', reject);
        let sent = 0;
        const pump = () => {
          while (sent < 1024 * 1024 && req.write(randomBytes(16 * 1024))) sent += 16 * 1024;
          if (sent < 1024 * 1024) req.once('drain', pump);
          else req.end();
        };
        pump();
      });
      expect(res.status).toBe(413);
      expect(JSON.parse(res.body).code).toBe('payload_too_large');
    });

    it('multipart over the limit → 413', async () => {
      const res = await t.http.post(`/api/projects/${id}/files`).set(bearer(alice.token)).field('kind', 'script').attach('file', randomBytes(70 * 1024), 'big.sh');
      expectError(res, 413, 'payload_too_large');
    });

    const head = (path: string, type: string, length: number) =>
      `POST ${path} HTTP/1.1\nHost: x\nAuthorization: Bearer ${alice.token}\nContent-Type: ${type}\nContent-Length: ${length}\n`;

    it('a client that disconnects mid-upload leaves no partial file and no row', async () => {
      const before = blobs();
      await rawRequest(t.url, head(`/api/projects/${id}/files?kind=file&name=cut`, 'application/octet-stream', 100_000), randomBytes(40_000), { end: 'destroy' });
      await expectNoTemp();
      expect(blobs()).toEqual(before);
    });

    it('multipart cut off mid-file leaves nothing either', async () => {
      const boundary = 'XyZ';
      const start = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="kind"\r\n\r\nfile\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n`);
      await rawRequest(t.url, head(`/api/projects/${id}/files`, `multipart/form-data; boundary=${boundary}`, 100_000), Buffer.concat([start, randomBytes(30_000)]), { end: 'destroy' });
      await expectNoTemp();
    });

    it('a Content-Length longer than the body → refused, nothing kept', async () => {
      const r = await rawRequest(t.url, head(`/api/projects/${id}/files?kind=file&name=long`, 'application/octet-stream', 2000), randomBytes(1000), { end: 'end' });
      expect(r.status === null || r.status >= 400).toBe(true);
    });

    it('a Content-Length shorter than the body → refused, nothing kept', async () => {
      const r = await rawRequest(t.url, head(`/api/projects/${id}/files?kind=file&name=short`, 'application/octet-stream', 1000), Buffer.concat([randomBytes(1000), Buffer.from([0, 1, 2, 0xff, 0xfe]), randomBytes(1000)]));
      expect(r.status === null || r.status >= 400).toBe(true);
      expect(r.text).not.toContain('201 Created');
    });

    it('multipart with a Content-Length shorter than the body → 400, nothing kept', async () => {
      const boundary = 'XyZ';
      const body = Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="kind"\r\n\r\nfile\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n${'z'.repeat(500)}\r\n--${boundary}--\r\n`,
      );
      const r = await rawRequest(t.url, head(`/api/projects/${id}/files`, `multipart/form-data; boundary=${boundary}`, body.length - 100), body);
      expect(r.status === null || r.status >= 400).toBe(true);
      expect(r.text).not.toContain('201 Created');
    });
  });

  describe('roles and projects', () => {
    let owner: Person, op: Person, viewer: Person, stranger: Person;
    let id: string;
    let file: { id: string; sha256: string };
    const bytes = randomBytes(500);
    beforeAll(async () => {
      [owner, op, viewer, stranger] = await Promise.all([0, 1, 2, 3].map(() => signupUser(t.http)));
      id = await project(owner);
      await addMember(owner, id, op, 'operator');
      await addMember(owner, id, viewer, 'viewer');
      file = (await rawUpload(owner, id, bytes, 'kind=file&name=shared.bin')).body;
    });

    it('an operator uploads and deletes', async () => {
      const up = await rawUpload(op, id, randomBytes(20), 'kind=file&name=op');
      expect(up.status).toBe(201);
      expect((await t.http.delete(`/api/files/${up.body.id}`).set(bearer(op.token))).status).toBe(204);
    });

    it('a viewer lists, reads and downloads, and gets 403 on upload and delete; nothing changes', async () => {
      expect((await t.http.get(`/api/projects/${id}/files`).set(bearer(viewer.token))).body.map((f: { id: string }) => f.id)).toEqual([file.id]);
      expect((await t.http.get(`/api/files/${file.id}`).set(bearer(viewer.token))).status).toBe(200);
      expect((await t.http.get(`/api/files/${file.id}/content`).set(bearer(viewer.token)).buffer(true).parse(binary as never)).body).toEqual(bytes);
      expectError(await rawUpload(viewer, id, randomBytes(20), 'kind=file&name=v'), 403, 'forbidden');
      expectError(await t.http.post(`/api/projects/${id}/files`).set(bearer(viewer.token)).field('kind', 'file').attach('file', randomBytes(20), 'v'), 403, 'forbidden');
      expectError(await t.http.post(`/api/projects/${id}/uploads`).set(bearer(viewer.token)).send({ kind: 'file', name: 'v', size: 10 }), 403, 'forbidden');
      expectError(await t.http.delete(`/api/files/${file.id}`).set(bearer(viewer.token)), 403, 'forbidden');
      expect((await rows(id)).map((r) => r.id)).toEqual([file.id]);
      await expectNoTemp();
    });

    it('a stranger gets 404 for everything, the same as for a file that does not exist', async () => {
      const as = (p: Person) => bearer(p.token);
      expectError(await t.http.get(`/api/projects/${id}/files`).set(as(stranger)), 404, 'not_found');
      expectError(await rawUpload(stranger, id, randomBytes(20), 'kind=file&name=s'), 404, 'not_found');
      for (const path of [`/api/files/${file.id}`, `/api/files/${file.id}/content`]) {
        const theirs = expectError(await t.http.get(path).set(as(stranger)), 404, 'not_found');
        const none = expectError(await t.http.get(path.replace(file.id, randomUUID())).set(as(stranger)), 404, 'not_found');
        expect(theirs.message).toBe(none.message);
      }
      expectError(await t.http.delete(`/api/files/${file.id}`).set(as(stranger)), 404, 'not_found');
      expectError(await t.http.get('/api/files/not-a-uuid').set(as(stranger)), 404, 'not_found');
      expect((await rows(id)).map((r) => r.id)).toEqual([file.id]);
      expectError(await t.http.get(`/api/files/${file.id}`), 401);
    });
  });

  describe('FileReferences', () => {
    it('a file a registered feature still needs cannot be deleted (409 naming it); once released it can', async () => {
      const alice = await signupUser(t.http);
      const id = await project(alice);
      const f = (await rawUpload(alice, id, randomBytes(50), 'kind=script&name=nightly.sh')).body;
      const other = (await rawUpload(alice, id, randomBytes(50), 'kind=script&name=other.sh')).body;
      const refs = t.app.get(FileReferences);
      const unregister = refs.register('test-schedules', async (file) => (file.id === f.id ? ['schedule "nightly"'] : []));
      try {
        const res = expectError(await t.http.delete(`/api/files/${f.id}`).set(bearer(alice.token)), 409, 'conflict');
        expect(res.message).toContain('schedule "nightly"');
        expect((await rows(id)).map((r) => r.id).sort()).toEqual([f.id, other.id].sort());
        expect(blobs().some((p) => p.endsWith(f.sha256))).toBe(true);
        // Only that file is held.
        expect((await t.http.delete(`/api/files/${other.id}`).set(bearer(alice.token))).status).toBe(204);
      } finally {
        unregister();
      }
      expect((await t.http.delete(`/api/files/${f.id}`).set(bearer(alice.token))).status).toBe(204);
    });
  });

  describe('resumable uploads', () => {
    let alice: Person;
    let id: string;
    beforeAll(async () => {
      alice = await signupUser(t.http);
      id = await project(alice);
    });
    const create = (body: object, who = alice, projectId = id) => t.http.post(`/api/projects/${projectId}/uploads`).set(bearer(who.token)).send(body);
    const put = (uploadId: string, offset: number, chunk: Buffer, who = alice) =>
      t.http.put(`/api/uploads/${uploadId}?offset=${offset}`).set(bearer(who.token)).set('Content-Type', 'application/octet-stream').send(chunk);
    const complete = (uploadId: string, body: object = {}, who = alice) => t.http.post(`/api/uploads/${uploadId}/complete`).set(bearer(who.token)).send(body);
    const partSize = (uploadId: string) => statSync(join(filesDir, 'uploads', `${uploadId}.part`)).size;

    it('chunks in order, then complete → the file, hashed by the server; the upload is gone', async () => {
      const bytes = randomBytes(300_000);
      const u = UploadSchema.strict().parse((await create({ kind: 'file', name: 'big.bin', size: bytes.length, sha256: sha(bytes) })).body);
      expect(u).toMatchObject({ offset: 0, size: 300_000, chunkMaxBytes: FILE_LIMITS.chunkMaxBytes });
      let offset = 0;
      for (const n of [100_000, 150_000, 50_000]) {
        const res = await put(u.id, offset, bytes.subarray(offset, offset + n));
        expect(res.status).toBe(200);
        offset += n;
        expect(res.body.offset).toBe(offset);
      }
      expect((await t.http.get(`/api/uploads/${u.id}`).set(bearer(alice.token))).body.offset).toBe(300_000);
      const done = await complete(u.id);
      expect(done.status).toBe(201);
      expect(StoredFileSchema.strict().parse(done.body)).toMatchObject({ name: 'big.bin', size: 300_000, sha256: sha(bytes) });
      const content = await t.http.get(`/api/files/${done.body.id}/content`).set(bearer(alice.token)).buffer(true).parse(binary as never);
      expect(content.body).toEqual(bytes);
      expectError(await t.http.get(`/api/uploads/${u.id}`).set(bearer(alice.token)), 404);
      expect(walk(join(filesDir, 'uploads'))).not.toContain(`${u.id}.part`);
    });

    it('a chunk replayed, out of order or overlapping → 409 with Upload-Offset; the bytes so far unchanged', async () => {
      const bytes = randomBytes(30_000);
      const u = (await create({ kind: 'file', name: 'x', size: bytes.length })).body;
      expect((await put(u.id, 0, bytes.subarray(0, 10_000))).status).toBe(200);
      for (const [offset, chunk] of [
        [0, bytes.subarray(0, 10_000)], // replay
        [20_000, bytes.subarray(20_000)], // ahead
        [5_000, bytes.subarray(5_000, 15_000)], // overlapping
        [0, randomBytes(10_000)], // a different first chunk
      ] as const) {
        const res = await put(u.id, offset, chunk);
        expectError(res, 409, 'conflict');
        expect(res.headers['upload-offset']).toBe('10000');
        expect(partSize(u.id)).toBe(10_000);
      }
      expect((await put(u.id, 10_000, bytes.subarray(10_000))).status).toBe(200);
      const done = await complete(u.id, { sha256: sha(bytes) });
      expect(done.status).toBe(201);
      expect(done.body.sha256).toBe(sha(bytes));
    });

    it('another user\'s upload id → 404, nothing written; another project\'s member cannot see it either', async () => {
      const u = (await create({ kind: 'file', name: 'x', size: 100 })).body;
      const mallory = await signupUser(t.http);
      const theirs = await project(mallory);
      expect(theirs).toBeTruthy();
      expectError(await put(u.id, 0, randomBytes(100), mallory), 404, 'not_found');
      expectError(await t.http.get(`/api/uploads/${u.id}`).set(bearer(mallory.token)), 404, 'not_found');
      expectError(await complete(u.id, {}, mallory), 404, 'not_found');
      expectError(await t.http.delete(`/api/uploads/${u.id}`).set(bearer(mallory.token)), 404, 'not_found');
      expectError(await create({ kind: 'file', name: 'x', size: 100 }, mallory, id), 404, 'not_found');
      expect(partSize(u.id)).toBe(0);
      expect((await t.http.delete(`/api/uploads/${u.id}`).set(bearer(alice.token))).status).toBe(204);
      expect(existsSync(join(filesDir, 'uploads', `${u.id}.part`))).toBe(false);
    });

    it('a chunk past the declared size or over 16 MB → 413; complete before the end → 409; a wrong sha256 → 400 and the upload is dropped', async () => {
      const bytes = randomBytes(1000);
      const u = (await create({ kind: 'file', name: 'x', size: 1000 })).body;
      expectError(await put(u.id, 0, randomBytes(1001)), 413, 'payload_too_large');
      expect(partSize(u.id)).toBe(0);
      expect((await put(u.id, 0, bytes.subarray(0, 600))).status).toBe(200);
      expectError(await complete(u.id), 409, 'conflict');
      expect((await put(u.id, 600, bytes.subarray(600))).status).toBe(200);
      expectValidationError(await complete(u.id, { sha256: sha(randomBytes(1)) }), 'sha256');
      expectError(await t.http.get(`/api/uploads/${u.id}`).set(bearer(alice.token)), 404);
      expect(existsSync(join(filesDir, 'uploads', `${u.id}.part`))).toBe(false);
      expect((await rows(id)).some((r) => r.sha256 === sha(bytes))).toBe(false);
      expect(blobs().some((p) => p.endsWith(sha(bytes)))).toBe(false);
    });

    it('the digest promised at creation is checked at complete', async () => {
      const bytes = randomBytes(500);
      const u = (await create({ kind: 'file', name: 'x', size: 500, sha256: sha(randomBytes(3)) })).body;
      expect((await put(u.id, 0, bytes)).status).toBe(200);
      expectValidationError(await complete(u.id), 'sha256');
      expect((await rows(id)).some((r) => r.sha256 === sha(bytes))).toBe(false);
    });

    it('creating: over the kind\'s limit → 413, bad fields → 400 naming them; nothing is created', async () => {
      const before = walk(join(filesDir, 'uploads'));
      expectError(await create({ kind: 'script', name: 'x', size: 64 * 1024 + 1 }), 413, 'payload_too_large');
      expectValidationError(await create({ kind: 'file', name: 'a\0b', size: 1 }), 'name');
      expectValidationError(await create({ kind: 'file', name: 'x', size: -1 }), 'size');
      expectValidationError(await create({ kind: 'file', name: 'x', size: 1, sha256: 'abc' }), 'sha256');
      expectValidationError(await create({ kind: 'file', name: 'x', size: 1, extra: true }), 'extra');
      expect(walk(join(filesDir, 'uploads'))).toEqual(before);
    });

    it('a bad offset → 400 naming offset; a chunk that is not octet-stream → 415', async () => {
      const u = (await create({ kind: 'file', name: 'x', size: 10 })).body;
      const bad = await t.http.put(`/api/uploads/${u.id}?offset=-1`).set(bearer(alice.token)).set('Content-Type', 'application/octet-stream').send(randomBytes(10));
      expectValidationError(bad, 'offset');
      expectError(await t.http.put(`/api/uploads/${u.id}?offset=0`).set(bearer(alice.token)).send({ a: 1 }), 415);
      expect(partSize(u.id)).toBe(0);
    });

    it('two chunks for the same offset at once: one is written, the other refused; the bytes are one chunk\'s', async () => {
      const a = randomBytes(200_000);
      const b = randomBytes(200_000);
      const u = (await create({ kind: 'file', name: 'x', size: 200_000 })).body;
      const [ra, rb] = await Promise.all([put(u.id, 0, a), put(u.id, 0, b)]);
      expect([ra.status, rb.status].sort()).toEqual([200, 409]);
      const winner = ra.status === 200 ? a : b;
      const done = await complete(u.id);
      expect(done.body.sha256).toBe(sha(winner));
    });

    it('complete hashes right whether this node saw every chunk (running digest) or not (read back from disk)', async () => {
      const uploads = t.app.get(ResumableUploadsService) as unknown as { running: Map<string, unknown> };
      for (const forget of [false, true]) {
        const bytes = randomBytes(90_000);
        const u = (await create({ kind: 'file', name: `seen-${forget}`, size: bytes.length })).body;
        expect((await put(u.id, 0, bytes.subarray(0, 40_000))).status).toBe(200);
        expect(uploads.running.has(u.id)).toBe(true);
        // As if the next chunk went to another node: this one's digest stops at 40,000 and cannot be used.
        if (forget) uploads.running.delete(u.id);
        expect((await put(u.id, 40_000, bytes.subarray(40_000))).status).toBe(200);
        expect(uploads.running.has(u.id)).toBe(!forget);
        const wrong = await complete(u.id, { sha256: sha(Buffer.from('not these bytes')) });
        expect(wrong.status).toBe(400);
        const again = (await create({ kind: 'file', name: `seen-${forget}`, size: bytes.length })).body;
        expect((await put(again.id, 0, bytes.subarray(0, 40_000))).status).toBe(200);
        if (forget) uploads.running.delete(again.id);
        expect((await put(again.id, 40_000, bytes.subarray(40_000))).status).toBe(200);
        const done = await complete(again.id, { sha256: sha(bytes) });
        expect(done.status).toBe(201);
        expect(done.body.sha256).toBe(sha(bytes));
        expect(uploads.running.has(again.id)).toBe(false);
      }
    });

    it('a chunk cut off mid-way leaves the offset and the bytes as they were', async () => {
      const bytes = randomBytes(20_000);
      const u = (await create({ kind: 'file', name: 'x', size: 20_000 })).body;
      expect((await put(u.id, 0, bytes.subarray(0, 5000))).status).toBe(200);
      const lock = async () => ((await t.db.query('SELECT lockedUntil FROM file_uploads WHERE id = ?', [u.id])) as { lockedUntil: unknown }[])[0].lockedUntil;
      let socket: net.Socket | undefined;
      const cut = rawRequest(
        t.url,
        `PUT /api/uploads/${u.id}?offset=5000 HTTP/1.1\nHost: x\nAuthorization: Bearer ${alice.token}\nContent-Type: application/octet-stream\nContent-Length: 15000\n`,
        randomBytes(7000),
        { end: 'wait', afterBody: (s) => (socket = s) },
      );
      // Cut only once the server holds the chunk's claim, so the refusal below is about this chunk.
      await waitFor('the chunk to claim the upload', async () => ((await lock()) !== null && socket ? true : undefined));
      socket!.destroy();
      await cut;
      await waitFor('the claim to be released', async () => ((await lock()) === null ? true : undefined));
      expect(partSize(u.id)).toBe(5000);
      expect((await t.http.get(`/api/uploads/${u.id}`).set(bearer(alice.token))).body.offset).toBe(5000);
      expect((await put(u.id, 5000, bytes.subarray(5000))).body.offset).toBe(20_000);
      expect((await complete(u.id, { sha256: sha(bytes) })).status).toBe(201);
    });
  });
});

/** supertest parser that keeps a binary body as a Buffer. */
function binary(res: NodeJS.ReadableStream, done: (err: Error | null, body: Buffer) => void): void {
  const parts: Buffer[] = [];
  res.on('data', (d: Buffer) => parts.push(d));
  res.on('end', () => done(null, Buffer.concat(parts)));
}
