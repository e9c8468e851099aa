/**
 * The file store against a real server process (embedded SQLite):
 *
 * - a 2 GiB upload in one request streams through: the server's resident
 *   memory (VmRSS from /proc/<pid>/status, sampled all along) grows by less
 *   than 200 MB, and the sha256 it computes, the one we computed while
 *   generating the bytes and the one of what it sends back are the same;
 * - a resumable upload passes a reverse proxy that refuses any request over
 *   100 MB, where the same file in one request is refused.
 *
 * The bytes come from a seeded AES-CTR keystream: the same on every run,
 * generated as they are sent, never held.
 */
import { createCipheriv, createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { StoredFile, Upload } from '@kapitan/shared';
import { signupUser, startServer, type TestServer, type TestUser } from './harness';

const MiB = 1024 * 1024;

/** `size` deterministic pseudo-random bytes for `seed`, produced 1 MiB at a time. */
function seededBytes(seed: number, size: number, from = 0): Readable {
  const key = createHash('sha256').update(`kapitan e2e ${seed}`).digest().subarray(0, 16);
  // CTR at block `from / 16`: any slice of the stream can be made on its own (for chunks).
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64BE(BigInt(Math.floor(from / 16)), 8);
  const cipher = createCipheriv('aes-128-ctr', key, iv);
  const skip = from % 16;
  const zeros = Buffer.alloc(MiB);
  let left = size;
  let first = true;
  return new Readable({
    read() {
      if (left <= 0) return this.push(null);
      let out = cipher.update(zeros.subarray(0, Math.min(MiB, left + (first ? skip : 0))));
      if (first) {
        out = out.subarray(skip);
        first = false;
      }
      left -= out.length;
      this.push(out);
    },
  });
}

async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** Sends `body` as one request and resolves with the status and the parsed JSON answer. */
function send(url: string, method: string, headers: http.OutgoingHttpHeaders, body: Readable): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    pipeline(body, req).catch(() => undefined);
  });
}

describe('file store (real server, SQLite)', () => {
  let server: TestServer;
  let owner: TestUser;
  let projectId: string;

  beforeAll(async () => {
    server = await startServer({ database: 'sqlite', env: { LOG_LEVEL: 'warn' } });
    owner = await signupUser(server.url, 'files');
    projectId = (await owner.api.createProject({ name: 'files' })).id;
  });
  afterAll(() => server?.dispose());

  it('streams a 2 GiB upload with bounded memory, and the sha256 matches end to end', async () => {
    const size = 2 * 1024 * MiB;
    const pid = server.process.pid!;
    const baseline = rssBytes(pid);
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytes(pid))), 100);
    const clientHash = createHash('sha256');
    const body = seededBytes(1, size);
    body.on('data', (c: Buffer) => clientHash.update(c));
    let res;
    try {
      res = await send(
        `${server.url}/api/projects/${projectId}/files?kind=file&name=big.tar`,
        'POST',
        { authorization: `Bearer ${owner.accessToken}`, 'content-type': 'application/octet-stream', 'content-length': size },
        body,
      );
    } finally {
      clearInterval(sampler);
    }
    expect(res.status).toBe(201);
    const file = res.body as StoredFile;
    const expected = clientHash.digest('hex');
    expect(file).toMatchObject({ size, sha256: expected, name: 'big.tar' });
    const growth = peak - baseline;
    console.log(`2 GiB upload: server RSS ${Math.round(baseline / MiB)} MiB before, peak ${Math.round(peak / MiB)} MiB (+${Math.round(growth / MiB)} MiB)`);
    expect(growth).toBeLessThan(200 * 1000 * 1000);

    // What comes back hashes the same: downloaded and hashed as it arrives.
    const downloaded = await new Promise<string>((resolve, reject) => {
      http
        .get(`${server.url}/api/files/${file.id}/content`, { headers: { authorization: `Bearer ${owner.accessToken}` } }, (r) => {
          expect(r.statusCode).toBe(200);
          expect(r.headers['content-length']).toBe(String(size));
          expect(r.headers.etag).toBe(`"${expected}"`);
          sha256Of(r).then(resolve, reject);
        })
        .on('error', reject);
    });
    expect(downloaded).toBe(expected);
    expect((await owner.api.request('DELETE', `/api/files/${file.id}`)).status).toBe(204);
  }, 900_000);

  it('a resumable upload passes a proxy that caps requests at 100 MB; the whole file in one request does not', async () => {
    const cap = 100 * 1000 * 1000;
    // A reverse proxy as nginx with client_max_body_size 100m behaves: a larger declared body → 413.
    const proxy = http.createServer((req, res) => {
      if (Number(req.headers['content-length'] ?? 0) > cap) {
        res.writeHead(413, { connection: 'close' }).end();
        req.destroy();
        return;
      }
      const upstream = http.request(`${server.url}${req.url}`, { method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode!, up.headers);
        up.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const via = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    try {
      const size = 300 * MiB + 12_345;
      const auth = { authorization: `Bearer ${owner.accessToken}` };
      const whole = await send(`${via}/api/projects/${projectId}/files?kind=file&name=whole.bin`, 'POST', { ...auth, 'content-type': 'application/octet-stream', 'content-length': size }, seededBytes(2, size));
      expect(whole.status).toBe(413);

      const expected = await sha256Of(seededBytes(2, size));
      const created = await send(`${via}/api/projects/${projectId}/uploads`, 'POST', { ...auth, 'content-type': 'application/json' }, Readable.from([JSON.stringify({ kind: 'file', name: 'chunked.bin', size, sha256: expected })]));
      expect(created.status).toBe(201);
      const upload = created.body as Upload;
      let offset = 0;
      while (offset < size) {
        const n = Math.min(upload.chunkMaxBytes, size - offset);
        const res = await send(`${via}/api/uploads/${upload.id}?offset=${offset}`, 'PUT', { ...auth, 'content-type': 'application/octet-stream', 'content-length': n }, seededBytes(2, n, offset));
        expect(res.status).toBe(200);
        offset = (res.body as Upload).offset;
      }
      const done = await send(`${via}/api/uploads/${upload.id}/complete`, 'POST', { ...auth, 'content-type': 'application/json' }, Readable.from(['{}']));
      expect(done.status).toBe(201);
      expect(done.body).toMatchObject({ size, sha256: expected, name: 'chunked.bin' });
    } finally {
      await new Promise((r) => proxy.close(r));
    }
  }, 600_000);
});
