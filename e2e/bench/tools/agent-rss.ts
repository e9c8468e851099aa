/**
 * RSS of an idle real agent (`kapitan-agent run`) in its shipped forms and
 * under different Node/V8 options, to see what its footprint is made of.
 *
 *   node --require ./bench/register.cjs bench/tools/agent-rss.ts [form[:node options]] …
 *
 * Forms: `dist` (agent/dist/main.js, as tsc wrote it, this Node), `bundle`
 * (agent/dist/bundle/kapitan-agent.cjs, this Node), `bundle20` (the bundle
 * on /usr/bin/node, the machine's own Node), `sea` (agent/dist/sea/kapitan-agent).
 * E.g. `dist bundle bundle:--max-semi-space-size=1 sea`. Options after `!`
 * go on the node command line instead of NODE_OPTIONS (V8 flags that
 * NODE_OPTIONS refuses, such as --jitless): `bundle!--jitless`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { startAgent, waitForMachineStatus } from '../../src/harness/agent';
import { runCleanups } from '../../src/harness/cleanup';
import { REPO_ROOT } from '../../src/harness/paths';
import { readStatus } from '../lib/proc';
import { KapitanServer } from '../lib/servers';
import { sleep } from '../lib/stats';

const FORMS: Record<string, { entry: string; launcher?: string[] }> = {
  dist: { entry: path.join(REPO_ROOT, 'agent/dist/main.js') },
  bundle: { entry: path.join(REPO_ROOT, 'agent/dist/bundle/kapitan-agent.cjs') },
  bundle20: { entry: path.join(REPO_ROOT, 'agent/dist/bundle/kapitan-agent.cjs'), launcher: ['/usr/bin/node'] },
  sea: { entry: path.join(REPO_ROOT, 'agent/dist/sea/kapitan-agent'), launcher: [] },
  bun: { entry: path.join(REPO_ROOT, 'agent/dist/bun/kapitan-agent'), launcher: [] },
};

/** The mappings holding most of the RSS, from /proc/PID/smaps (AGENT_RSS_SMAPS=1). */
function largestMappings(pid: number): string {
  const rows: { name: string; rss: number }[] = [];
  let name = '';
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) name = head[1] || '[anon]';
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) rows.push({ name, rss: Number(rss[1]) * 1024 });
  }
  const byName = new Map<string, number>();
  for (const r of rows) byName.set(r.name, (byName.get(r.name) ?? 0) + r.rss);
  return [...byName].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([n, b]) => `  ${(b / 1e6).toFixed(1)} MB ${n}\n`).join('');
}

async function main(): Promise<void> {
  const variants = process.argv.length > 2 ? process.argv.slice(2) : ['dist'];
  const server = await KapitanServer.start({ db: 'sqlite' });
  for (const variant of variants) {
    const flagged = /^([a-z0-9]+)!(.*)$/.exec(variant);
    const [form, options] = flagged ? [flagged[1]!, ''] : [variant.split(':')[0]!, variant.split(':').slice(1).join(':')];
    const f = FORMS[form];
    if (!f) throw new Error(`unknown form ${form}: ${Object.keys(FORMS).join(', ')}`);
    const launcher = flagged ? [...(f.launcher ?? [process.execPath]), ...flagged[2]!.split(' ').filter(Boolean)] : f.launcher;
    const agent = await startAgent({ serverUrl: server.url, token: await server.enrolmentToken(1), entry: f.entry, launcher, env: { KAPITAN_AGENT_LOG_LEVEL: 'warn', NODE_OPTIONS: options || undefined } });
    await waitForMachineStatus({ api: server.api, projectId: server.projectId, machineId: agent.machineId, status: 'online' });
    await sleep(15_000);
    const s = readStatus(agent.process.pid!)!;
    if (process.env.AGENT_RSS_SMAPS) process.stdout.write(largestMappings(agent.process.pid!));
    process.stdout.write(`${variant}: RSS ${(s.rss / 1e6).toFixed(1)} MB (peak ${(s.hwm / 1e6).toFixed(1)} MB; anonymous ${(s.anon / 1e6).toFixed(1)}, file ${(s.file / 1e6).toFixed(1)})\n`);
    await agent.dispose();
  }
  await server.dispose();
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => runCleanups());
