/**
 * 14. Layers: re-distributing an image of which one layer changed. The
 * machines' engines hold v1 (a big base layer and a small app layer); v2 has
 * the same base and a new app layer. Each machine fetches v2 the way the agent
 * does — the server's layer index, then only the layers its engine lacks as
 * Range requests, each verified into its FileCache — against the whole v2
 * tarball through the same FileCache (what every machine moved before).
 * Measured: bytes moved per machine and the time until all hold what they need.
 *
 * The tarballs are made as `docker save` lays them out (manifest.json, the
 * config named by its digest, `<id>/layer.tar` uncompressed), with random
 * layer contents; the engine's answer ("which chain ids do you hold") is the
 * set an engine holding v1 gives, and `docker load` is left out — it costs
 * the same whoever delivered the tar, and less when it skips a layer.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chainIds, fetchByLayers, FileCache, planLayers, silentLogger } from '@kapitan/agent';
import type { EnrolResponse, StoredFile } from '@kapitan/shared';
import { FACTS } from '../../src/agents/fixtures';
import { ProcSampler } from '../lib/proc';
import type { Row, ScenarioResult } from '../lib/report';
import { KapitanServer } from '../lib/servers';
import { MiB, type BenchContext, type Scenario } from '../lib/context';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
function sha256File(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(MiB);
  for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  fs.closeSync(fd);
  return h.digest('hex');
}

/** A layer.tar of one file of `sizeMiB` random MiB; its diffID. */
function makeLayer(dir: string, name: string, sizeMiB: number): { file: string; diffId: string } {
  const content = path.join(dir, `${name}-content`);
  fs.mkdirSync(content, { recursive: true });
  const fd = fs.openSync(path.join(content, 'data.bin'), 'w');
  for (let i = 0; i < sizeMiB; i++) fs.writeSync(fd, randomBytes(MiB));
  fs.closeSync(fd);
  const file = path.join(dir, `${name}.tar`);
  execFileSync('tar', ['--format=ustar', '-C', content, '-cf', file, 'data.bin']);
  fs.rmSync(content, { recursive: true });
  return { file, diffId: `sha256:${sha256File(file)}` };
}

/** A docker save tarball of the given layers, bottom first. */
function makeImage(dir: string, name: string, layers: { file: string; diffId: string }[]): string {
  const root = path.join(dir, name);
  fs.mkdirSync(root, { recursive: true });
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: ['/bin/sh'] }, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) } }));
  const configName = `${sha256(config)}.json`;
  fs.writeFileSync(path.join(root, configName), config);
  const names = layers.map((l, i) => {
    const id = sha256(Buffer.from(`${name} ${i} ${l.diffId}`));
    fs.mkdirSync(path.join(root, id));
    fs.linkSync(l.file, path.join(root, id, 'layer.tar'));
    return `${id}/layer.tar`;
  });
  fs.writeFileSync(path.join(root, 'manifest.json'), JSON.stringify([{ Config: configName, RepoTags: [`bench/${name}:latest`], Layers: names }]));
  const tarball = path.join(dir, `${name}.image.tar`);
  execFileSync('tar', ['--format=ustar', '--hard-dereference', '-C', root, '-cf', tarball, 'manifest.json', configName, ...names]);
  fs.rmSync(root, { recursive: true });
  return tarball;
}

/** One image tarball into the project's store over the raw-body upload (shared with the distribution scenario). */
export function uploadImage(server: KapitanServer, tarball: string): Promise<StoredFile> {
  const size = fs.statSync(tarball).size;
  return new Promise<StoredFile>((resolve, reject) => {
    const req = http.request(`${server.url}/api/projects/${server.projectId}/files?kind=image&name=${path.basename(tarball)}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.owner.accessToken}`, 'content-type': 'application/octet-stream', 'content-length': size },
    });
    req.on('response', (res) => {
      let t = '';
      res.setEncoding('utf8').on('data', (d) => (t += d));
      res.on('end', () => (res.statusCode === 201 ? resolve(JSON.parse(t)) : reject(new Error(`upload: ${res.statusCode} ${t}`))));
    });
    req.on('error', reject);
    fs.createReadStream(tarball).pipe(req);
  });
}

export const layers: Scenario = {
  name: 'layers',
  title: '14. Layers: re-distributing an image of which one layer changed, against moving the whole tarball',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const t0 = Date.now();
    const machines = ctx.n ?? (ctx.size === 'large' ? 50 : 10);
    const baseMiB = ctx.size === 'large' ? 200 : 50;
    const appMiB = 2;
    const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'kapitan-bench-layers-'));
    const server = await KapitanServer.start({ db: 'sqlite', cpuProfDir: ctx.cpuProfDir });
    try {
      ctx.log(`layers: images of a ${baseMiB} MiB base and a ${appMiB} MiB app layer`);
      const base = makeLayer(dir, 'base', baseMiB);
      const appV2 = makeLayer(dir, 'app-v2', appMiB);
      const v2 = makeImage(dir, 'v2', [base, appV2]);
      const up = await uploadImage(server, v2);
      const token = await server.enrolmentToken(machines);
      const creds: EnrolResponse[] = [];
      for (let i = 0; i < machines; i++) {
        const r = await server.api.request<EnrolResponse>('POST', '/api/agent/enrol', { token: null, body: { token, facts: { ...FACTS, hostname: `bench-${i}` }, labels: {} } });
        if (r.status !== 201) throw new Error(`enrol: ${r.status} ${r.text}`);
        creds.push(r.body);
      }
      // The machines never connect: their parts stay queued and grant the downloads; the first distribution indexes the file.
      const d = await server.api.request('POST', `/api/projects/${server.projectId}/distributions`, { body: { fileId: up.id, targets: { all: true } } });
      if (d.status !== 201) throw new Error(`distribution: ${d.status} ${d.text}`);
      const ref = { fileId: up.id, sha256: up.sha256, size: up.size };
      // What an engine holding v1 answers: the chain of v1's layers (the base, then v1's own app layer).
      const engineOfV1 = new Set(chainIds([base.diffId, `sha256:${'1'.repeat(64)}`]));

      ctx.log(`layers: ${machines} machines fetch v2 by layers`);
      const sampler = new ProcSampler(server.pid, 200);
      const k0 = process.hrtime.bigint();
      const moved = await Promise.all(
        creds.map(async (c, i) => {
          const cache = new FileCache({ dir: path.join(dir, `cache-${i}`), maxBytes: 2 * up.size, serverUrl: server.url, credential: c.credential });
          const plan = await planLayers(ref, cache, async () => engineOfV1, silentLogger);
          if (!plan || !plan.present[0] || plan.present[1]) throw new Error('layers: the plan is not "base present, app missing"');
          const image = await fetchByLayers(plan, ref, cache, () => undefined);
          image.release();
          return image.transfer.movedBytes;
        }),
      );
      const kapitanS = Number(process.hrtime.bigint() - k0) / 1e9;
      const serverStats = sampler.stop();
      for (let i = 0; i < machines; i++) await fs.promises.rm(path.join(dir, `cache-${i}`), { recursive: true, force: true });

      let baselineS: number | null = null;
      if (!ctx.skipBaseline) {
        ctx.log(`layers: ${machines} machines fetch the whole v2 tarball`);
        const b0 = process.hrtime.bigint();
        await Promise.all(
          creds.map(async (c, i) => {
            const cache = new FileCache({ dir: path.join(dir, `whole-${i}`), maxBytes: 2 * up.size, serverUrl: server.url, credential: c.credential });
            (await cache.acquire(ref)).release();
          }),
        );
        baselineS = Number(process.hrtime.bigint() - b0) / 1e9;
        for (let i = 0; i < machines; i++) await fs.promises.rm(path.join(dir, `whole-${i}`), { recursive: true, force: true });
      }
      const perMachine = moved[0];
      if (moved.some((m) => m !== perMachine)) throw new Error(`layers: machines moved different byte counts: ${[...new Set(moved)].join(', ')}`);
      const appLayer = fs.statSync(appV2.file).size;
      const rows: Row[] = [
        { metric: 'bytes moved per machine', unit: 'MiB', kapitan: perMachine / MiB, baseline: up.size / MiB, goal: '≤ changed layer + 64 KiB of metadata', met: perMachine <= appLayer + 64 * 1024 },
        { metric: `${machines} machines: time until all hold what they need`, unit: 's', kapitan: kapitanS, baseline: baselineS },
        { metric: 'server CPU during the layered fetches', unit: '% of a core', kapitan: serverStats.cpuPercent, baseline: 'n/a' },
      ];
      return {
        name: 'layers',
        title: this.title,
        size: ctx.size,
        params: { machines, baseMiB, appMiB, tarballBytes: up.size, appLayerBytes: appLayer },
        rows,
        notes: [
          'Kapitan: each machine is the agent\'s planLayers + fetchByLayers (layer index over HTTP, manifest, config and the missing layer as Range requests, each verified by digest into its FileCache), all at once, in the bench process.',
          'Baseline: the whole v2 tarball through the same FileCache, as every machine fetched it before layer-wise distribution (sha256 of the whole file verified).',
          'The engine is not asked: the chain ids of an engine holding v1 stand in for it; docker load is excluded (the e2e test layers.spec.ts loads for real).',
        ],
        durationS: (Date.now() - t0) / 1000,
        raw: { moved: perMachine, whole: up.size, kapitanS, baselineS },
      };
    } finally {
      await server.dispose();
      await fs.promises.rm(dir, { recursive: true, force: true });
    }
  },
};
