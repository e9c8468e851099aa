/**
 * Where a Kapitan server's heap goes per connected agent: two heap snapshots
 * (after a GC) with N/10 and N simulated agents connected, then
 * heapsnapshot-diff.cjs between them, per agent.
 *
 *   node --require ./bench/register.cjs bench/tools/heap-per-agent.ts [N=2200] [DIR=/tmp/kapitan-heap]
 *
 * Honors KAPITAN_BENCH_SERVER_ENTRY like the benchmarks.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { runCleanups } from '../../src/harness/cleanup';
import { Fleet } from '../lib/fleet';
import { KapitanServer } from '../lib/servers';
import { sleep } from '../lib/stats';

async function snapshot(server: KapitanServer, dir: string): Promise<string> {
  await server.gcStats();
  const before = new Set(fs.readdirSync(dir));
  process.kill(server.pid, 'SIGUSR1');
  for (let i = 0; i < 600; i++) {
    await sleep(500);
    const file = fs.readdirSync(dir).find((f) => !before.has(f) && f.endsWith('.heapsnapshot'));
    if (!file) continue;
    const full = path.join(dir, file);
    const s1 = fs.statSync(full).size;
    await sleep(1500);
    if (fs.statSync(full).size === s1 && s1 > 0) return full;
  }
  throw new Error('no heap snapshot written');
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 2200);
  const dir = process.argv[3] ?? '/tmp/kapitan-heap';
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const server = await KapitanServer.start({ db: 'mysql', env: { NODE_OPTIONS: `--heapsnapshot-signal=SIGUSR1 --diagnostic-dir=${dir}` } });
  const fleet = await Fleet.start({ role: 'kapitan', serverUrl: server.url, count: n, token: await server.enrolmentToken(n), tuning: { outboxBytes: 1 << 20 } });
  await server.restart();
  const warm = Math.round(n / 10);
  await fleet.connect(1000, warm);
  await fleet.waitFor((s) => s.ready >= warm, 120_000, 'warm agents');
  await sleep(3000);
  const a = await snapshot(server, dir);
  await fleet.connect(1000);
  await fleet.waitFor((s) => s.ready >= n, 300_000, 'all agents');
  await sleep(3000);
  const b = await snapshot(server, dir);
  await fleet.stop();
  await server.dispose();
  process.stdout.write(execFileSync(process.execPath, ['--max-old-space-size=8192', path.join(__dirname, 'heapsnapshot-diff.cjs'), a, b, String(n - warm), '--top', '45'], { encoding: 'utf8', maxBuffer: 1 << 26 }));
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => runCleanups().finally(() => process.exit()));
