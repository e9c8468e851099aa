/**
 * 7. Uploads: one multi-GB file into the project's file store over HTTP,
 * first in one request (raw body), then in resumable chunks of 16 MiB (as
 * the CLI and the dashboard send big files), against writing the same bytes
 * to a file on the same disk with a plain stream in this process (fsynced,
 * as the store fsyncs before it renames). The server's resident memory is
 * sampled throughout: its growth must stay flat whatever the file's size.
 *
 * Nothing written is deleted until the scenario ends, so that each of the
 * three writes fills page cache the machine has not just freed. On the
 * bench VMs (a balloon device, a thin-provisioned disk mounted with
 * `discard`) writing 4 GiB a few seconds after deleting another 4 GiB file
 * ran at 1,100–1,500 MiB/s, and into memory not freed just before at
 * 270–300 MiB/s, durable either way: deleting the plain file before the
 * upload handed the upload the fast case, or not, by timing alone.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FILE_LIMITS, type StoredFile, type Upload } from '@kapitan/shared';
import { ProcSampler } from '../lib/proc';
import type { Row, ScenarioResult } from '../lib/report';
import { KapitanServer } from '../lib/servers';
import { MiB, type BenchContext, type Scenario } from '../lib/context';

/** A repeating 16 MiB random block: costs nothing to make, so the source never limits either side. */
const BLOCK = randomBytes(16 * MiB);

function source(size: number, offset = 0): Readable {
  let sent = 0;
  return new Readable({
    highWaterMark: MiB,
    read() {
      if (sent >= size) return this.push(null);
      const at = (offset + sent) % BLOCK.length;
      const n = Math.min(size - sent, BLOCK.length - at, MiB);
      sent += n;
      this.push(BLOCK.subarray(at, at + n));
    },
  });
}

interface Measured {
  seconds: number;
  rssGrowth: number;
}

async function plainWrite(dir: string, size: number): Promise<Measured> {
  const file = path.join(dir, 'plain.bin');
  const t0 = process.hrtime.bigint();
  const out = fs.createWriteStream(file, { flush: true });
  await pipeline(source(size), out);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { seconds, rssGrowth: NaN };
}

function request(url: string, method: string, headers: http.OutgoingHttpHeaders, body: Readable | null): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, json: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    if (body) pipeline(body, req).catch(reject);
    else req.end();
  });
}

async function measureServer(server: KapitanServer, send: () => Promise<StoredFile>): Promise<Measured & { file: StoredFile }> {
  const sampler = new ProcSampler(server.pid, 100);
  const before = sampler.samples[0]?.rss ?? NaN;
  const t0 = process.hrtime.bigint();
  const file = await send();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const s = sampler.stop();
  return { seconds, rssGrowth: s.rssMax - before, file };
}

export const uploads: Scenario = {
  name: 'uploads',
  title: '7. Uploads into the file store, against a plain write to disk',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const t0 = Date.now();
    const sizeMiB = ctx.n ?? (ctx.size === 'large' ? 4096 : 512);
    const size = sizeMiB * MiB;
    const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'kapitan-bench-uploads-'));
    const server = await KapitanServer.start({ db: 'sqlite', cpuProfDir: ctx.cpuProfDir, env: { KAPITAN_FILES_MAX_FILE_BYTES: String(size * 2), KAPITAN_FILES_MAX_IMAGE_BYTES: String(size * 2) } });
    const auth = { authorization: `Bearer ${server.owner.accessToken}` };
    try {
      ctx.log(`plain write of ${sizeMiB} MiB`);
      const plain = ctx.skipBaseline ? null : await plainWrite(dir, size);

      ctx.log(`one-request upload of ${sizeMiB} MiB`);
      const single = await measureServer(server, async () => {
        const r = await request(`${server.url}/api/projects/${server.projectId}/files?kind=file&name=one.bin`, 'POST', { ...auth, 'content-type': 'application/octet-stream', 'content-length': size }, source(size));
        if (r.status !== 201) throw new Error(`one-request upload: HTTP ${r.status} ${JSON.stringify(r.json)}`);
        return r.json as StoredFile;
      });

      ctx.log(`chunked upload of ${sizeMiB} MiB`);
      const chunked = await measureServer(server, async () => {
        const created = await request(`${server.url}/api/projects/${server.projectId}/uploads`, 'POST', { ...auth, 'content-type': 'application/json' }, Readable.from([JSON.stringify({ kind: 'file', name: 'chunked.bin', size })]));
        if (created.status !== 201) throw new Error(`create upload: HTTP ${created.status} ${JSON.stringify(created.json)}`);
        const upload = created.json as Upload;
        for (let offset = 0; offset < size; offset += FILE_LIMITS.chunkMaxBytes) {
          const n = Math.min(FILE_LIMITS.chunkMaxBytes, size - offset);
          const r = await request(`${server.url}/api/uploads/${upload.id}?offset=${offset}`, 'PUT', { ...auth, 'content-type': 'application/octet-stream', 'content-length': n }, source(n, offset));
          if (r.status !== 200) throw new Error(`chunk at ${offset}: HTTP ${r.status} ${JSON.stringify(r.json)}`);
        }
        const done = await request(`${server.url}/api/uploads/${upload.id}/complete`, 'POST', { ...auth, 'content-type': 'application/json' }, Readable.from(['{}']));
        if (done.status !== 201) throw new Error(`complete: HTTP ${done.status} ${JSON.stringify(done.json)}`);
        return done.json as StoredFile;
      });
      if (chunked.file.sha256 !== single.file.sha256) throw new Error(`the two uploads of the same bytes hash differently: ${single.file.sha256} / ${chunked.file.sha256}`);

      const mibps = (m: Measured | null) => (m ? sizeMiB / m.seconds : null);
      const plainRate = mibps(plain);
      const rows: Row[] = [
        { metric: `one request, ${sizeMiB} MiB: throughput`, unit: 'MiB/s', kapitan: mibps(single), baseline: plainRate, goal: '≥ 0.7× plain write', met: plainRate === null ? null : mibps(single)! >= 0.7 * plainRate },
        { metric: 'one request: server RSS growth', unit: 'MiB', kapitan: single.rssGrowth / MiB, baseline: 'n/a', goal: '< 100 MB', met: single.rssGrowth < 100e6 },
        { metric: `16 MiB chunks, ${sizeMiB} MiB: throughput`, unit: 'MiB/s', kapitan: mibps(chunked), baseline: plainRate, goal: '≥ 0.7× plain write', met: plainRate === null ? null : mibps(chunked)! >= 0.7 * plainRate },
        { metric: '16 MiB chunks: server RSS growth', unit: 'MiB', kapitan: chunked.rssGrowth / MiB, baseline: 'n/a', goal: '< 100 MB', met: chunked.rssGrowth < 100e6 },
      ];
      return {
        name: 'uploads',
        title: this.title,
        size: ctx.size,
        params: { sizeMiB, chunkMiB: FILE_LIMITS.chunkMaxBytes / MiB },
        rows,
        notes: [
          'Kapitan: HTTP on loopback into the server (sha256 while streaming, temp file fsynced, renamed into the content-addressed store, row written); chunked adds a request per 16 MiB and the hash of the assembled file at `complete`.',
          'Baseline: the same bytes from the same in-memory source through fs.createWriteStream (flush: true) into a file on the same disk, in the bench process.',
          'Nothing is deleted until the scenario ends: on the bench VMs a write just after deleting a file as large ran 4× faster than one that is not, so each of the three writes starts from the same state.',
          'RSS growth: peak VmRSS of the server during the upload minus its VmRSS just before, sampled every 100 ms.',
        ],
        durationS: (Date.now() - t0) / 1000,
        raw: { plain, single: { seconds: single.seconds, rssGrowth: single.rssGrowth }, chunked: { seconds: chunked.seconds, rssGrowth: chunked.rssGrowth } },
      };
    } finally {
      await server.dispose();
      await fs.promises.rm(dir, { recursive: true, force: true });
    }
  },
};
