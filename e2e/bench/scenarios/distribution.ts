/**
 * 8. Distribution: one image tarball (small 50 MiB to 20 machines, large
 * 200 MiB to 100) fetched at once by every machine the way agents fetch it
 * — the agent's own FileCache, with its machine credential, from
 * `/api/agent/files/:id/content`, hashing as it writes into its cache —
 * against the same number of plain HTTP downloads of the same file, each
 * written to disk, from a bare static Node server in its own process.
 *
 * The machines are enrolled over REST and never connect, so their parts of
 * the distribution stay queued and grant the download: what is measured is
 * the bytes' path (server → network → verified cache), not the engine's
 * `docker load`, which costs the same whoever delivered the tarball.
 */
import { uploadImage } from './layers';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { FileCache } from '@kapitan/agent';
import type { EnrolResponse, StoredFile } from '@kapitan/shared';
import { childEnv, spawnProcess } from '../../src/harness/process';
import { REPO_ROOT } from '../../src/harness/paths';
import { FACTS } from '../../src/agents/fixtures';
import { ProcSampler } from '../lib/proc';
import type { Row, ScenarioResult } from '../lib/report';
import { KapitanServer } from '../lib/servers';
import { MiB, type BenchContext, type Scenario } from '../lib/context';


/** A tar archive holding `sizeMiB` of random bytes: what the store accepts as kind image. */
function makeTarball(dir: string, sizeMiB: number): string {
  const payload = path.join(dir, 'layer.bin');
  const fd = fs.openSync(payload, 'w');
  const block = randomBytes(MiB);
  for (let i = 0; i < sizeMiB; i++) fs.writeSync(fd, block);
  fs.closeSync(fd);
  const tarball = path.join(dir, 'image.tar');
  execFileSync('tar', ['-C', dir, '-cf', tarball, 'layer.bin']);
  fs.rmSync(payload);
  return tarball;
}

function plainDownload(url: string, to: string): Promise<void> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        if (res.statusCode !== 200) return reject(new Error(`static server answered ${res.statusCode}`));
        pipeline(res, fs.createWriteStream(to)).then(resolve, reject);
      })
      .on('error', reject);
  });
}

export const distribution: Scenario = {
  name: 'distribution',
  title: '8. Distribution: one image to many machines, against a bare static server',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const t0 = Date.now();
    const machines = ctx.n ?? (ctx.size === 'large' ? 100 : 20);
    const sizeMiB = ctx.size === 'large' ? 200 : 50;
    const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'kapitan-bench-distribution-'));
    const server = await KapitanServer.start({ db: 'sqlite', cpuProfDir: ctx.cpuProfDir });
    try {
      const tarball = makeTarball(dir, sizeMiB);
      const size = fs.statSync(tarball).size;
      const up = await uploadImage(server, tarball);
      ctx.log(`distribution: enrolling ${machines} machines`);
      const token = await server.enrolmentToken(machines);
      const creds: EnrolResponse[] = [];
      for (let i = 0; i < machines; i++) {
        const r = await server.api.request<EnrolResponse>('POST', '/api/agent/enrol', { token: null, body: { token, facts: { ...FACTS, hostname: `bench-${i}` }, labels: {} } });
        if (r.status !== 201) throw new Error(`enrol: ${r.status} ${r.text}`);
        creds.push(r.body);
      }
      const d = await server.api.request('POST', `/api/projects/${server.projectId}/distributions`, { body: { fileId: up.id, targets: { all: true } } });
      if (d.status !== 201) throw new Error(`distribution: ${d.status} ${d.text}`);

      ctx.log(`distribution: ${machines} agent caches fetch ${sizeMiB} MiB each`);
      const sampler = new ProcSampler(server.pid, 200);
      const k0 = process.hrtime.bigint();
      await Promise.all(
        creds.map(async (c, i) => {
          const cache = new FileCache({ dir: path.join(dir, `cache-${i}`), maxBytes: 2 * size, serverUrl: server.url, credential: c.credential });
          const lease = await cache.acquire({ fileId: up.id, sha256: up.sha256, size });
          lease.release();
        }),
      );
      const kapitanS = Number(process.hrtime.bigint() - k0) / 1e9;
      const serverStats = sampler.stop();
      for (let i = 0; i < machines; i++) await fs.promises.rm(path.join(dir, `cache-${i}`), { recursive: true, force: true });

      let baselineS: number | null = null;
      if (!ctx.skipBaseline) {
        const bare = spawnProcess('static-server', process.execPath, [path.join(__dirname, '../workers/static-server.cjs'), tarball], { env: childEnv({}), cwd: REPO_ROOT });
        try {
          const line = await bare.waitForLine(/static ready (\d+)/, 30_000);
          const port = /static ready (\d+)/.exec(line)![1];
          ctx.log(`distribution: ${machines} plain downloads from a static server`);
          const b0 = process.hrtime.bigint();
          await Promise.all(Array.from({ length: machines }, (_, i) => plainDownload(`http://127.0.0.1:${port}/image.tar`, path.join(dir, `plain-${i}`))));
          baselineS = Number(process.hrtime.bigint() - b0) / 1e9;
        } finally {
          await bare.dispose();
        }
      }
      const rows: Row[] = [
        { metric: `${machines} machines × ${sizeMiB} MiB: time until all hold it`, unit: 's', kapitan: kapitanS, baseline: baselineS, goal: '≤ 1.3× bare downloads', met: baselineS === null ? null : kapitanS <= 1.3 * baselineS },
        { metric: 'aggregate throughput', unit: 'MiB/s', kapitan: (machines * size) / MiB / kapitanS, baseline: baselineS === null ? null : (machines * size) / MiB / baselineS },
        { metric: 'server CPU during the downloads', unit: '% of a core', kapitan: serverStats.cpuPercent, baseline: 'n/a' },
        { metric: 'server RSS peak during the downloads', unit: 'MiB', kapitan: serverStats.rssMax / MiB, baseline: 'n/a' },
      ];
      return {
        name: 'distribution',
        title: this.title,
        size: ctx.size,
        params: { machines, sizeMiB },
        rows,
        notes: [
          'Kapitan: each machine is the agent\'s FileCache (machine credential, sha256 verified while writing its cache), all at once, in the bench process; the server checks the credential and the distribution\'s grant per request.',
          'Baseline: the same number of plain GETs of the same file from workers/static-server.cjs (fs.createReadStream piped to the response), each written to a file, in the bench process.',
          'Loopback only: both sides share the two cores with the clients, so this compares the servers\' per-byte cost, not a network.',
        ],
        durationS: (Date.now() - t0) / 1000,
        raw: { kapitanS, baselineS, size },
      };
    } finally {
      await server.dispose();
      await fs.promises.rm(dir, { recursive: true, force: true });
    }
  },
};
