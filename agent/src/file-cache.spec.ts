import { createHash, randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { AGENT_FILES_PATH } from '@kapitan/shared';
import { DownloadError, FileCache } from './file-cache';
import { tmpDir } from './test-support/wait';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const CREDENTIAL = 'kpm_test.secret';

interface Served {
  bytes: Buffer;
  /** What is actually sent (a corruption), default the bytes. */
  send?: Buffer;
  /** Cut the connection after this many bytes of the body, on the first `cuts` requests. */
  cutAfter?: number;
  cuts?: number;
  /** Send this many bytes of the body on the first request, then nothing more (the agent's idle timeout ends it). */
  stallAfter?: number;
}

/** A real HTTP server speaking the agent download route: Bearer check, one Range, cuts on demand. */
async function fileServer() {
  const files = new Map<string, Served>();
  const requests: { fileId: string; range: string | undefined; auth: string | undefined }[] = [];
  const server = http.createServer((req, res) => {
    const m = new RegExp(`^${AGENT_FILES_PATH}/([^/]+)/content$`).exec(req.url ?? '');
    const fileId = m ? decodeURIComponent(m[1]) : '';
    requests.push({ fileId, range: req.headers.range, auth: req.headers.authorization });
    if (req.headers.authorization !== `Bearer ${CREDENTIAL}`) return void res.writeHead(401).end();
    const f = files.get(fileId);
    if (!f) return void res.writeHead(404).end();
    const body = f.send ?? f.bytes;
    const r = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = r ? Number(r[1]) : 0;
    const part = body.subarray(start);
    res.writeHead(r ? 206 : 200, {
      'Content-Length': part.length,
      ETag: `"${sha(f.bytes)}"`,
      ...(r ? { 'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
    });
    if (f.stallAfter !== undefined) {
      const n = f.stallAfter;
      f.stallAfter = undefined;
      res.write(part.subarray(0, n));
      return;
    }
    if (f.cutAfter !== undefined && (f.cuts ?? 1) > 0) {
      f.cuts = (f.cuts ?? 1) - 1;
      res.write(part.subarray(0, f.cutAfter), () => res.socket?.destroy());
      return;
    }
    res.end(part);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    requests,
    add(f: Served): { fileId: string; sha256: string; size: number } {
      const fileId = randomUUID();
      files.set(fileId, f);
      return { fileId, sha256: sha(f.bytes), size: f.bytes.length };
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('FileCache: agent downloads over HTTP into a bounded, content-addressed cache', () => {
  let srv: Awaited<ReturnType<typeof fileServer>>;
  let dir: string;
  beforeEach(async () => {
    srv = await fileServer();
    dir = tmpDir();
  });
  afterEach(async () => {
    await srv.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const cache = (maxBytes = 1 << 20, extra: Partial<ConstructorParameters<typeof FileCache>[0]> = {}) =>
    new FileCache({ dir: path.join(dir, 'cache'), maxBytes, serverUrl: srv.url, credential: CREDENTIAL, resumeDelayMs: 5, ...extra });
  const partials = () => fs.readdirSync(path.join(dir, 'cache', 'partial'));

  it('downloads with the machine credential, verifies, and serves the same bytes a second time without a request', async () => {
    const bytes = randomBytes(200_000);
    const ref = srv.add({ bytes });
    const c = cache();
    const seen: number[] = [];
    const lease = await c.acquire(ref, (received) => seen.push(received));
    expect(fs.readFileSync(lease.path)).toEqual(bytes);
    expect(path.basename(lease.path)).toBe(ref.sha256);
    expect(seen[seen.length - 1]).toBe(bytes.length);
    expect(srv.requests).toEqual([{ fileId: ref.fileId, range: undefined, auth: `Bearer ${CREDENTIAL}` }]);
    lease.release();
    // Another file id with the same bytes (a re-upload, another deploy): content-addressed, no download.
    const again = await c.acquire({ ...ref, fileId: randomUUID() });
    expect(again.path).toBe(lease.path);
    expect(srv.requests).toHaveLength(1);
    // And after a restart of the agent: the entry is found on disk.
    again.release();
    await cache().acquire(ref);
    expect(srv.requests).toHaveLength(1);
  });

  it('an entry an earlier process left is hashed again at its first use: torn bytes (a host crash before they reached the disk) are downloaded again, never handed out', async () => {
    const bytes = randomBytes(120_000);
    const ref = srv.add({ bytes });
    const first = await cache().acquire(ref);
    first.release();
    expect(srv.requests).toHaveLength(1);
    // What a crash of the host can leave: the rename reached the disk, the tail of the data did not.
    fs.truncateSync(first.path, 0);
    fs.truncateSync(first.path, bytes.length);
    const c = cache();
    expect(c.has(ref.sha256)).toBe(true);
    const [a, b] = await Promise.all([c.acquire(ref), c.acquire(ref)]);
    expect(fs.readFileSync(a.path)).toEqual(bytes);
    expect(b.path).toBe(a.path);
    // Two acquires, one check, one download again.
    expect(srv.requests).toHaveLength(2);
    a.release();
    b.release();
    // Checked once per process: the next acquire neither hashes a missing file nor asks again.
    await c.acquire(ref);
    expect(srv.requests).toHaveLength(2);
  });

  it('two deliveries of the same file at once share one download', async () => {
    const ref = srv.add({ bytes: randomBytes(50_000) });
    const c = cache();
    const [a, b] = await Promise.all([c.acquire(ref), c.acquire(ref)]);
    expect(a.path).toBe(b.path);
    expect(srv.requests).toHaveLength(1);
  });

  it('a connection cut mid-body resumes with Range from the bytes on disk, and the result is verified whole', async () => {
    const bytes = randomBytes(300_000);
    const ref = srv.add({ bytes, cutAfter: 100_000, cuts: 2 });
    const lease = await cache().acquire(ref);
    expect(fs.readFileSync(lease.path)).toEqual(bytes);
    expect(srv.requests.map((r) => r.range)).toEqual([undefined, 'bytes=100000-', 'bytes=200000-']);
  });

  it('a response that stalls is dropped by the idle timeout and resumed from every byte it had written', async () => {
    const bytes = randomBytes(300_000);
    const ref = srv.add({ bytes, stallAfter: 120_000 });
    const lease = await cache(1 << 20, { idleTimeoutMs: 150 }).acquire(ref);
    expect(fs.readFileSync(lease.path)).toEqual(bytes);
    expect(srv.requests.map((r) => r.range)).toEqual([undefined, 'bytes=120000-']);
  });

  it('a connection that keeps breaking gives up after the bounded resumes, with a reason, and keeps nothing', async () => {
    const ref = srv.add({ bytes: randomBytes(100_000), cutAfter: 10, cuts: 100 });
    const c = cache(1 << 20, { maxResumes: 2 });
    await expect(c.acquire(ref)).rejects.toMatchObject({ code: 'network', message: expect.stringContaining('broke off 3 times') });
    expect(srv.requests).toHaveLength(3);
    expect(partials()).toEqual([]);
    expect(c.list()).toEqual([]);
  });

  it('a corrupted download (the bytes do not hash to the announced sha256) is discarded and reported as hash_mismatch', async () => {
    const bytes = randomBytes(80_000);
    const corrupt = Buffer.from(bytes);
    corrupt[40_000] ^= 0xff;
    const ref = srv.add({ bytes, send: corrupt });
    const c = cache();
    const err = await c.acquire(ref).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect(err).toMatchObject({ code: 'hash_mismatch', message: expect.stringContaining(`not to the ${ref.sha256}`) });
    expect(c.has(ref.sha256)).toBe(false);
    expect(partials()).toEqual([]);
    expect(fs.readdirSync(path.join(dir, 'cache', 'sha256'))).toEqual([]);
  });

  it('corrupted after a resume: the re-hashed prefix plus the tail still fails the check', async () => {
    const bytes = randomBytes(80_000);
    const corrupt = Buffer.from(bytes);
    corrupt[70_000] ^= 1;
    const ref = srv.add({ bytes, send: corrupt, cutAfter: 30_000 });
    await expect(cache().acquire(ref)).rejects.toMatchObject({ code: 'hash_mismatch' });
    expect(srv.requests.map((r) => r.range)).toEqual([undefined, 'bytes=30000-']);
    expect(partials()).toEqual([]);
  });

  it('more bytes than announced, fewer bytes than announced: size_mismatch, nothing kept', async () => {
    const bytes = randomBytes(1000);
    const longer = srv.add({ bytes, send: Buffer.concat([bytes, Buffer.from('x')]) });
    const shorter = srv.add({ bytes, send: bytes.subarray(0, 999) });
    const c = cache();
    await expect(c.acquire(longer)).rejects.toMatchObject({ code: 'size_mismatch' });
    await expect(c.acquire(shorter)).rejects.toMatchObject({ code: 'size_mismatch' });
    expect(partials()).toEqual([]);
  });

  it('a refused credential and an unknown file fail at once with their reason (no retries)', async () => {
    const ref = srv.add({ bytes: randomBytes(10) });
    await expect(cache(1 << 20, { credential: 'kpm_wrong.x' }).acquire(ref)).rejects.toMatchObject({ code: 'refused' });
    await expect(cache().acquire({ ...ref, fileId: randomUUID(), sha256: sha(Buffer.from('other')) })).rejects.toMatchObject({ code: 'not_found' });
    expect(srv.requests).toHaveLength(2);
  });

  it('bounded: least recently used entries are evicted, never one in use; too large or no room is a clear failure', async () => {
    const a = srv.add({ bytes: randomBytes(400) });
    const b = srv.add({ bytes: randomBytes(400) });
    const d = srv.add({ bytes: randomBytes(400) });
    const c = cache(1000);
    const la = await c.acquire(a);
    (await c.acquire(b)).release();
    // A is held: B (released, older than nothing else free) makes room for D.
    const ld = await c.acquire(d);
    expect(c.has(a.sha256)).toBe(true);
    expect(c.has(b.sha256)).toBe(false);
    expect(c.totalBytes()).toBe(800);
    // Both held: no room for B again.
    await expect(c.acquire(b)).rejects.toMatchObject({ code: 'cache_full' });
    la.release();
    // A released is now the least recently used free entry.
    await c.acquire(b);
    expect(c.has(a.sha256)).toBe(false);
    expect(c.has(d.sha256)).toBe(true);
    ld.release();
    const huge = srv.add({ bytes: randomBytes(1001) });
    await expect(c.acquire(huge)).rejects.toMatchObject({ code: 'too_large', message: expect.stringContaining('KAPITAN_AGENT_CACHE_BYTES') });
  });

  it('an empty file is a valid entry', async () => {
    const ref = srv.add({ bytes: Buffer.alloc(0) });
    const lease = await cache().acquire(ref);
    expect(fs.statSync(lease.path).size).toBe(0);
  });
});
