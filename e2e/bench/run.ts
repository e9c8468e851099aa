/**
 * `npm run bench` — benchmarks of the agent channel, each scenario side by
 * side with a bare socket.io baseline in the same run. See bench/README.md.
 *
 *   --scenario <name|all>[,<name>…]   capacity, latency, throughput, fanout, storm, footprint, uploads, distribution, audit, metrics, containers, log-viewer, failover, layers, schedules
 *   --size small|large                small: about a minute each (CI); large: the sizes
 *   --n <number>                      the scenario's main size (agents; seconds for footprint; schedules for schedules)
 *   --db mysql|sqlite                 database of the multi-agent scenarios (throughput: both)
 *   --out <dir>                       JSON results (default e2e/bench/results/)
 *   --no-baseline                     Kapitan only (profiling)
 *   --cpu-prof <dir>                  V8 CPU profiles of the Kapitan server
 *   --readme                          write the tables into README.md (between the bench markers)
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runCleanups } from '../src/harness/cleanup';
import { REPO_ROOT } from '../src/harness/paths';
import type { BenchContext, Scenario, Size } from './lib/context';
import { machineInfo } from './lib/proc';
import { markdown, table, type ScenarioResult } from './lib/report';
import { capacity } from './scenarios/capacity';
import { latency } from './scenarios/latency';
import { throughput } from './scenarios/throughput';
import { fanout } from './scenarios/fanout';
import { storm } from './scenarios/storm';
import { footprint } from './scenarios/footprint';
import { uploads } from './scenarios/uploads';
import { distribution } from './scenarios/distribution';
import { layers } from './scenarios/layers';
import { audit } from './scenarios/audit';
import { metrics } from './scenarios/metrics';
import { containers } from './scenarios/containers';
import { logViewer } from './scenarios/log-viewer';
import { failover } from './scenarios/failover';
import { schedules } from './scenarios/schedules';

const SCENARIOS: Scenario[] = [capacity, latency, throughput, fanout, storm, footprint, uploads, distribution, audit, metrics, containers, logViewer, failover, layers, schedules];

function usage(message?: string): never {
  if (message) process.stderr.write(`bench: ${message}\n`);
  process.stderr.write(
    `usage: npm run bench -- [--scenario all|${SCENARIOS.map((s) => s.name).join('|')}[,…]] [--size small|large] [--n N] [--db mysql|sqlite] [--out DIR] [--no-baseline] [--cpu-prof DIR] [--readme]\n`,
  );
  process.exit(2);
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', default: 'all' },
      size: { type: 'string', default: 'small' },
      n: { type: 'string' },
      db: { type: 'string' },
      out: { type: 'string', default: path.join(__dirname, 'results') },
      'no-baseline': { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      readme: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) usage();
  if (values.size !== 'small' && values.size !== 'large') usage(`--size must be small or large, not ${values.size}`);
  if (values.db !== undefined && values.db !== 'mysql' && values.db !== 'sqlite') usage(`--db must be mysql or sqlite`);
  const names = values.scenario === 'all' ? SCENARIOS.map((s) => s.name) : values.scenario.split(',').map((s) => s.trim());
  const chosen = names.map((n) => SCENARIOS.find((s) => s.name === n) ?? usage(`unknown scenario ${n}`));
  const n = values.n === undefined ? undefined : Number(values.n);
  if (n !== undefined && !(Number.isInteger(n) && n > 0)) usage('--n must be a positive integer');

  const started = new Date();
  const log = (line: string): void => void process.stderr.write(`[bench ${((Date.now() - started.getTime()) / 1000).toFixed(0).padStart(4)}s] ${line}\n`);
  const cpuProfDir = values['cpu-prof'] ? path.resolve(values['cpu-prof']) : undefined;
  if (cpuProfDir) fs.mkdirSync(cpuProfDir, { recursive: true });
  const ctx: BenchContext = { size: values.size as Size, n, db: values.db as BenchContext['db'], skipBaseline: values['no-baseline'], cpuProfDir, log };
  const machine = machineInfo();
  log(`machine: ${JSON.stringify(machine)}`);

  const results: ScenarioResult[] = [];
  let failed = 0;
  for (const s of chosen) {
    log(`--- ${s.title} (${ctx.size})`);
    const t0 = Date.now();
    let result: ScenarioResult;
    try {
      result = await s.run(ctx);
    } catch (err) {
      failed++;
      log(`${s.name} failed: ${err instanceof Error ? err.stack : String(err)}`);
      result = { name: s.name, title: s.title, size: ctx.size, params: {}, rows: [], notes: [], durationS: (Date.now() - t0) / 1000, error: err instanceof Error ? err.message : String(err) };
    } finally {
      await runCleanups().catch((err: unknown) => log(`cleanup: ${String(err)}`));
    }
    results.push(result);
    process.stdout.write('\n' + table(result) + '\n');
  }

  fs.mkdirSync(values.out, { recursive: true });
  const stamp = started.toISOString().replace(/[:.]/g, '-');
  const file = path.join(values.out, `bench-${ctx.size}-${stamp}.json`);
  const doc = { startedAt: started.toISOString(), durationS: (Date.now() - started.getTime()) / 1000, size: ctx.size, machine, results };
  fs.writeFileSync(file, JSON.stringify(doc, null, 2) + '\n');
  const md = renderMarkdown(doc);
  fs.writeFileSync(file.replace(/\.json$/, '.md'), md);
  log(`results: ${file} (and .md)`);
  if (values.readme) {
    writeReadme(md);
    log('README.md performance section updated');
  }
  return failed ? 1 : 0;
}

function renderMarkdown(doc: { startedAt: string; durationS: number; size: string; machine: Record<string, string | number>; results: ScenarioResult[] }): string {
  const m = doc.machine;
  return [
    `Run of ${doc.startedAt.slice(0, 10)} (\`npm run bench -- --size ${doc.size}\`, ${Math.round(doc.durationS / 60)} min) on ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB RAM, Node ${m.node}, Linux ${m.kernel}. Kapitan and the baseline ran one after the other on the same machine, each with its simulated agents in separate processes.`,
    '',
    ...doc.results.map(markdown),
  ].join('\n');
}

const START = '<!-- bench:start -->';
const END = '<!-- bench:end -->';

/**
 * The tables go into the README's performance section: between the
 * `<!-- bench:tables:start/end -->` markers if the section has them (the text
 * around them stays), else the whole section between `<!-- bench:start/end -->`.
 */
function writeReadme(md: string): void {
  const file = path.join(REPO_ROOT, 'README.md');
  const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const inner = ['<!-- bench:tables:start -->', md.trim(), '<!-- bench:tables:end -->'].join('\n');
  if (text.includes('<!-- bench:tables:start -->') && text.includes('<!-- bench:tables:end -->')) {
    const a = text.indexOf('<!-- bench:tables:start -->');
    const b = text.indexOf('<!-- bench:tables:end -->') + '<!-- bench:tables:end -->'.length;
    fs.writeFileSync(file, text.slice(0, a) + inner + text.slice(b));
  } else if (text.includes(START) && text.includes(END)) {
    const a = text.indexOf(START) + START.length;
    const b = text.indexOf(END);
    fs.writeFileSync(file, text.slice(0, a) + '\n## Performance\n\n' + inner + '\n' + text.slice(b));
  } else {
    fs.writeFileSync(file, `${text}${text && !text.endsWith('\n') ? '\n' : ''}\n${START}\n## Performance\n\n${inner}\n${END}\n`);
  }
}

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(130);
    stopping = true;
    process.stderr.write(`\nbench: ${signal}, cleaning up…\n`);
    runCleanups().finally(() => process.exit(130));
  });
}

main().then(
  (code) => {
    process.exitCode = code;
    setImmediate(() => process.exit(code)).unref();
  },
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.stack : String(err)}\n`);
    void runCleanups().finally(() => process.exit(1));
  },
);
