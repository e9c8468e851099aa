/**
 * 9. Audit log: what recording costs an audited write, and how fast the log
 * comes back out. Writes: `PATCH /api/projects/:id` (one update, one audit
 * event) from a few concurrent clients, beside `GET` of the same project
 * through the same stack (authentication, role check, no write) as the
 * floor. Export: the whole project log as NDJSON over HTTP, against reading
 * the same rows straight from the database in this process and serialising
 * them the same way. The server's resident memory is sampled during the
 * export: a streamed export must not grow with the log.
 */
import http from 'node:http';
import { MiB, type BenchContext, type Scenario } from '../lib/context';
import { ProcSampler } from '../lib/proc';
import type { Row, ScenarioResult } from '../lib/report';
import { KapitanServer } from '../lib/servers';

const CONCURRENCY = 8;

async function rate(total: number, one: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < total) await one(next++);
    }),
  );
  return total / (Number(process.hrtime.bigint() - t0) / 1e9);
}

/** Streams the export and counts it, without holding it: lines and bytes. */
function exportOnce(url: string, token: string): Promise<{ lines: number; bytes: number; seconds: number; status: number }> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    http
      .get(url, { headers: { authorization: `Bearer ${token}` } }, (res) => {
        let lines = 0;
        let bytes = 0;
        res.on('data', (d: Buffer) => {
          bytes += d.length;
          for (const b of d) if (b === 10) lines++;
        });
        res.on('end', () => resolve({ lines, bytes, seconds: Number(process.hrtime.bigint() - t0) / 1e9, status: res.statusCode! }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

export const audit: Scenario = {
  name: 'audit',
  title: '9. Audit log: audited writes, and the NDJSON export against a direct read',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const t0 = Date.now();
    const writes = ctx.n ?? (ctx.size === 'large' ? 50_000 : 1_000);
    const db = ctx.db ?? 'sqlite';
    const server = await KapitanServer.start({ db, cpuProfDir: ctx.cpuProfDir });
    try {
      const api = server.api;
      const path = `/api/projects/${server.projectId}`;
      ctx.log(`${writes} audited writes, ${CONCURRENCY} at a time`);
      const writeRate = await rate(writes, async (i) => {
        const r = await api.request('PATCH', path, { body: { description: `bench ${i}` } });
        if (r.status !== 200) throw new Error(`PATCH: HTTP ${r.status} ${r.text}`);
      });
      const readRate = ctx.skipBaseline
        ? null
        : await rate(writes, async () => {
            const r = await api.request('GET', path);
            if (r.status !== 200) throw new Error(`GET: HTTP ${r.status} ${r.text}`);
          });
      const stored = await server.store.auditRows(server.projectId);
      const updates = stored.filter((r) => r.action === 'project.update').length;
      if (updates !== writes) throw new Error(`${writes} audited writes left ${updates} project.update events`);

      ctx.log(`export of ${stored.length} events`);
      const sampler = new ProcSampler(server.pid, 100);
      const before = sampler.samples[0]?.rss ?? NaN;
      const exported = await exportOnce(`${server.url}${path}/audit/export`, server.owner.accessToken);
      const s = sampler.stop();
      if (exported.status !== 200 || exported.lines !== stored.length) throw new Error(`export: HTTP ${exported.status}, ${exported.lines} lines for ${stored.length} events`);
      let direct: number | null = null;
      if (!ctx.skipBaseline) {
        const d0 = process.hrtime.bigint();
        const rows = await server.store.auditRows(server.projectId);
        let bytes = 0;
        for (const r of rows) bytes += JSON.stringify(r).length + 1;
        direct = rows.length / (Number(process.hrtime.bigint() - d0) / 1e9);
        if (!bytes) throw new Error('direct read found nothing');
      }
      const exportRate = stored.length / exported.seconds;
      const rssGrowth = s.rssMax - before;
      const rows: Row[] = [
        { metric: `audited writes (PATCH project), ${CONCURRENCY} concurrent`, unit: 'req/s', kapitan: writeRate, baseline: readRate, goal: '≥ 0.3× GET of the same project', met: readRate === null ? null : writeRate >= 0.3 * readRate },
        { metric: 'audit events per audited write', unit: 'events', kapitan: updates / writes, baseline: 'n/a', goal: 'exactly 1', met: updates === writes },
        { metric: `export of ${stored.length} events`, unit: 'events/s', kapitan: exportRate, baseline: direct, goal: '≥ 2,000 events/s', met: exportRate >= 2_000 },
        { metric: 'export: server RSS growth', unit: 'MiB', kapitan: rssGrowth / MiB, baseline: 'n/a', goal: '< 100 MB', met: rssGrowth < 100e6 },
      ];
      return {
        name: 'audit',
        title: this.title,
        size: ctx.size,
        params: { writes, concurrency: CONCURRENCY, db, events: stored.length, exportBytes: exported.bytes },
        rows,
        notes: [
          'Writes: each PATCH is the update plus the interceptor’s audit insert (and the actor’s email lookup) before the response; the baseline GET goes through the same authentication and role check and writes nothing.',
          'Export: `GET …/audit/export` streamed over loopback (500 events per query, serialised per line); baseline: one SELECT of the same rows from the same database in the bench process, JSON.stringify per row.',
          'The export goal is absolute: a million-event log in under ten minutes. The direct read is the floor it is measured against, not a target (it skips HTTP, authentication, the ORM and the event shape).',
          'RSS growth: peak VmRSS of the server during the export minus its VmRSS just before, sampled every 100 ms.',
        ],
        durationS: (Date.now() - t0) / 1000,
        raw: { writeRate, readRate, exportRate, direct, rssGrowth, exported },
      };
    } finally {
      await server.dispose();
    }
  },
};
