/**
 * The agent's side of distribution by layers, against a stand-in for the
 * server's two routes (index and Range content): only the missing layer,
 * manifest and config move (counted by the server), each verified; the tar
 * made for docker load holds exactly those members, byte for byte, as the
 * system's tar reads it (long names included); every reason to send the
 * image whole is taken; a tampered layer or an index that disagrees with the
 * manifest fails with the reason and leaves nothing in the cache.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import type { FileRef, ImageIndex } from '@kapitan/shared';
import { DownloadError, FileCache } from './file-cache';
import { chainIds, fetchByLayers, planLayers } from './image-layers';
import { ImageLoadError } from './image-loader';
import { silentLogger } from './logger';
import { tmpDir } from './test-support/wait';

const hex = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** A ustar member as a test lays it out: header + body + padding; returns the body's offset in `out`. */
function append(out: Buffer[], name: string, body: Buffer): number {
  const at = out.reduce((n, b) => n + b.length, 0) + 512;
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100, 'latin1');
  h.write(`${body.length.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  h.fill(0x20, 148, 156);
  h.write('0', 156, 'latin1');
  h.write('ustar\x0000', 257, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  out.push(h, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  return at;
}

/** A docker-save-shaped tarball of two layers and its index, as the server would build it. */
function image(fileId: string) {
  const layers = [randomBytes(40_000), randomBytes(3_000)];
  const diffIds = layers.map((l) => `sha256:${hex(l)}`);
  const config = Buffer.from(JSON.stringify({ os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds } }));
  const configName = `${hex(config)}.json`;
  const names = [`${'a'.repeat(64)}/layer.tar`, `${'b'.repeat(120)}/layer.tar`];
  const manifest = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: ['app:v2'], Layers: names }]));
  const out: Buffer[] = [];
  const layerAt = layers.map((l, i) => append(out, names[i].slice(0, 100), l));
  const configAt = append(out, configName, config);
  const manifestAt = append(out, 'manifest.json', manifest);
  out.push(Buffer.alloc(1024));
  const bytes = Buffer.concat(out);
  const index: ImageIndex = {
    fileId,
    sha256: hex(bytes),
    size: bytes.length,
    format: 'docker-save',
    manifest: { name: 'manifest.json', offset: manifestAt, size: manifest.length, sha256: hex(manifest) },
    config: { name: configName, offset: configAt, size: config.length, digest: `sha256:${hex(config)}` },
    layers: layers.map((l, i) => ({ name: names[i], offset: layerAt[i], size: l.length, diffId: diffIds[i] })),
  };
  return { bytes, index, layers, diffIds, config, configName, manifest, names };
}

describe('image layers: only what the engine lacks moves, verified', () => {
  let dir: string;
  let server: http.Server;
  let url: string;
  let served = 0;
  let img: ReturnType<typeof image>;
  let index: unknown;
  let body: Buffer;
  let ranges: string[];
  /** Cut the first response that starts at this offset after half its bytes. */
  let cutAt: number | null;
  const fileId = randomUUID();
  beforeEach(async () => {
    dir = tmpDir();
    img = image(fileId);
    index = img.index;
    body = img.bytes;
    served = 0;
    ranges = [];
    cutAt = null;
    server = http.createServer((req, res) => {
      if (req.url === `/api/agent/files/${fileId}/image-index`) {
        if (index === null) return res.writeHead(404).end();
        return res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(index));
      }
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (!m) return res.writeHead(200, { 'Content-Length': body.length }).end(body);
      ranges.push(req.headers.range!);
      const part = body.subarray(Number(m[1]), Number(m[2]) + 1);
      res.writeHead(206, { 'Content-Length': part.length, 'Content-Range': `bytes ${m[1]}-${m[2]}/${body.length}` });
      if (cutAt === Number(m[1])) {
        cutAt = null;
        const half = part.subarray(0, part.length >> 1);
        served += half.length;
        return res.write(half, () => res.socket?.destroy());
      }
      served += part.length;
      res.end(part);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(async () => {
    await new Promise((r) => server.close(r));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const cache = () => new FileCache({ dir: path.join(dir, 'cache'), maxBytes: 1 << 24, serverUrl: url, credential: 'kpm_x.y', resumeDelayMs: 10 });
  const ref = (): FileRef => ({ fileId, sha256: img.index.sha256, size: img.index.size });
  /** An engine holding the first layer (an image built on the same base). */
  const baseOnly = async () => new Set(chainIds([img.diffIds[0]]));

  it('chain ids: the first is the diffID, each next the sha256 of "<chain below> <diffID>"', () => {
    const [a, b, c] = [`sha256:${'1'.repeat(64)}`, `sha256:${'2'.repeat(64)}`, `sha256:${'3'.repeat(64)}`];
    const ab = `sha256:${hex(`${a} ${b}`)}`;
    expect(chainIds([a, b, c])).toEqual([a, ab, `sha256:${hex(`${ab} ${c}`)}`]);
    expect(chainIds([])).toEqual([]);
  });

  it('the base present: only manifest, config and the top layer move; the tar for docker load holds exactly those, byte for byte', async () => {
    const c = cache();
    const plan = await planLayers(ref(), c, baseOnly, silentLogger);
    expect(plan?.present).toEqual([true, false]);
    const have: number[] = [];
    const got = await fetchByLayers(plan!, ref(), c, (n) => have.push(n));
    const expected = img.manifest.length + img.config.length + img.layers[1].length;
    expect(got.transfer).toEqual({ movedBytes: expected, layers: { present: 1, total: 2 } });
    expect(served).toBe(expected);
    expect(got.imageIds).toEqual([img.index.config.digest]);
    expect(got.repoTags).toEqual(['app:v2']);
    expect(Math.max(...have)).toBe(img.layers[0].length + expected);

    const tarball = path.join(dir, 'assembled.tar');
    await new Promise<void>((resolve, reject) => {
      const out = fs.createWriteStream(tarball);
      (got.open() as NodeJS.ReadableStream).pipe(out).on('finish', resolve).on('error', reject);
    });
    got.release();
    const x = path.join(dir, 'x');
    fs.mkdirSync(x);
    execFileSync('tar', ['-xf', tarball, '-C', x]);
    expect(fs.readFileSync(path.join(x, 'manifest.json'))).toEqual(img.manifest);
    expect(fs.readFileSync(path.join(x, img.configName))).toEqual(img.config);
    // The long (pax) name of the top layer, and no file for the layer the engine has.
    expect(fs.readFileSync(path.join(x, img.names[1]))).toEqual(img.layers[1]);
    expect(fs.existsSync(path.join(x, img.names[0]))).toBe(false);

    // Again on the same cache: nothing moves.
    served = 0;
    const again = await fetchByLayers((await planLayers(ref(), c, baseOnly, silentLogger))!, ref(), c, () => undefined);
    again.release();
    expect(again.transfer.movedBytes).toBe(0);
    expect(served).toBe(0);
  });

  it('a layer cut off mid-way resumes with the rest of its own range only, and is verified whole', async () => {
    const top = img.index.layers[1];
    cutAt = top.offset;
    const c = cache();
    const got = await fetchByLayers((await planLayers(ref(), c, baseOnly, silentLogger))!, ref(), c, () => undefined);
    got.release();
    const mine = ranges.filter((r) => r.endsWith(`-${top.offset + top.size - 1}`));
    expect(mine).toHaveLength(2);
    expect(mine[0]).toBe(`bytes=${top.offset}-${top.offset + top.size - 1}`);
    const resumedAt = Number(/^bytes=(\d+)-/.exec(mine[1])![1]);
    expect(resumedAt).toBeGreaterThan(top.offset);
    expect(resumedAt).toBeLessThan(top.offset + top.size);
    expect(c.has(img.diffIds[1].slice(7))).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'cache', 'sha256', img.diffIds[1].slice(7)))).toEqual(img.layers[1]);
  });

  it('sent whole when the server has no index, the index is of other bytes or malformed, or the engine cannot tell', async () => {
    const c = cache();
    index = null;
    expect(await planLayers(ref(), c, baseOnly, silentLogger)).toBeNull();
    index = { ...img.index, sha256: 'f'.repeat(64) };
    expect(await planLayers(ref(), c, baseOnly, silentLogger)).toBeNull();
    index = { ...img.index, layers: [{ ...img.index.layers[0], offset: img.index.size }] };
    expect(await planLayers(ref(), c, baseOnly, silentLogger)).toBeNull();
    index = { ...img.index, extra: true };
    expect(await planLayers(ref(), c, baseOnly, silentLogger)).toBeNull();
    index = img.index;
    expect(await planLayers(ref(), c, async () => null, silentLogger)).toBeNull();
    expect(served).toBe(0);
  });

  it('a tampered layer is discarded with hash_mismatch: nothing of it is kept, nothing is handed out', async () => {
    body = Buffer.from(img.bytes);
    body[img.index.layers[1].offset + 10] ^= 0xff;
    const c = cache();
    const err = await fetchByLayers((await planLayers(ref(), c, baseOnly, silentLogger))!, ref(), c, () => undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect((err as DownloadError).code).toBe('hash_mismatch');
    expect((err as Error).message).toMatch(new RegExp(`^layer 2 of 2 \\(${img.diffIds[1]}\\): the downloaded bytes hash to sha256 [0-9a-f]{64}, not to the ${img.diffIds[1]} it must have; discarded$`));
    expect(c.has(img.diffIds[1].slice(7))).toBe(false);
    expect(fs.readdirSync(path.join(dir, 'cache', 'partial'))).toEqual([]);
    // The verified members stay cached, none of them held.
    expect(c.list().every((e) => e.leases === 0)).toBe(true);
  });

  it('an index that does not say what the (verified) manifest and config say is refused before any layer moves', async () => {
    const swapped = { ...img.index, layers: [img.index.layers[1], img.index.layers[0]] };
    index = swapped;
    const c = cache();
    const plan = await planLayers(ref(), c, async () => new Set(chainIds([swapped.layers[0].diffId])), silentLogger);
    const err = await fetchByLayers(plan!, ref(), c, () => undefined).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageLoadError);
    expect((err as Error).message).toBe('the image index does not match the image: other layer paths; nothing was loaded');
    expect(served).toBe(img.manifest.length + img.config.length);
  });
});
