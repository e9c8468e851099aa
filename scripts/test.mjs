#!/usr/bin/env node
// `npm test`: build everything, then the unit/integration tests of the
// workspaces named by the root `test:unit` script, then the e2e suite (the
// `test:e2e` script). Stops at the first failing step. The last line is the
// summary, `N passed, N failed`, counted from jest's --json output (a step
// that fails without a jest report, such as the build, counts as one failure).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const bin = path.join(root, 'node_modules', '.bin');

// Node 24 from node_modules/.bin, whoever started us.
if (Number(process.versions.node.split('.')[0]) < 24 && fs.existsSync(path.join(bin, 'node'))) {
  const again = spawnSync(path.join(bin, 'node'), process.argv.slice(1), { stdio: 'inherit' });
  process.exit(again.status ?? 1);
}

const env = { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}` };
// Run npm with this (Node 24) node when npm started us; else the npm on PATH.
const npm = /npm-cli\.js$/.test(process.env.npm_execpath ?? '') ? [process.execPath, process.env.npm_execpath] : ['npm'];
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const resultsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'kapitan-test-'));

const totals = { passed: 0, failed: 0, skipped: 0 };
const lines = [];
let current;
/** How long jest may linger after writing its report (open handles) before it is stopped. */
const EXIT_GRACE_MS = 30_000;

/** Signals the step's whole process group (npm, sh, jest and their children). */
function signalStep(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/**
 * Runs `npm …` in its own process group. With `report`, a jest run that wrote
 * its report but has not exited EXIT_GRACE_MS later is stopped (resolves
 * `hung: true`) instead of holding CI until its deadline.
 */
function run(args, report) {
  return new Promise((resolve) => {
    const child = spawn(npm[0], [...npm.slice(1), ...args], { cwd: root, env, stdio: 'inherit', detached: true });
    current = child;
    let hung = false;
    let watch;
    if (report) {
      let reportSeenAt = 0;
      watch = setInterval(() => {
        if (reportSeenAt === 0) {
          if (fs.existsSync(report)) reportSeenAt = Date.now();
        } else if (!hung && Date.now() - reportSeenAt > EXIT_GRACE_MS) {
          hung = true;
          console.error(`\ntest: jest wrote its report but did not exit within ${EXIT_GRACE_MS / 1000} s (open handles? try --detectOpenHandles); stopping it`);
          signalStep(child, 'SIGTERM');
          setTimeout(() => signalStep(child, 'SIGKILL'), 5_000).unref();
        }
      }, 1_000);
    }
    child.on('error', (error) => {
      clearInterval(watch);
      console.error(`test: cannot run npm: ${error.message}`);
      resolve({ code: 127, hung });
    });
    child.on('close', (code, signal) => {
      clearInterval(watch);
      resolve({ code: code ?? (signal ? 128 : 1), hung });
    });
  });
}

function readJestReport(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

function finish(code) {
  fs.rmSync(resultsDir, { recursive: true, force: true });
  console.log('');
  for (const line of lines) console.log(line);
  if (totals.skipped > 0) console.log(`(${totals.skipped} skipped)`);
  console.log(`${totals.passed} passed, ${totals.failed} failed`);
  process.exit(code);
}

/** One step: a plain npm command, or a jest run whose JSON report is counted. */
async function step(label, args, report) {
  const started = Date.now();
  console.log(`\n━━ ${label}: npm ${args.join(' ')}`);
  const { code: exitCode, hung } = await run(args, report);
  const code = hung && exitCode === 0 ? 1 : exitCode;
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const result = report ? readJestReport(report) : undefined;
  if (hung) lines.push(`${label}: jest did not exit after its run (open handles); stopped`);
  if (result) {
    const failed = result.numFailedTests + result.numRuntimeErrorTestSuites;
    const skipped = result.numPendingTests + result.numTodoTests;
    totals.passed += result.numPassedTests;
    totals.failed += failed;
    totals.skipped += skipped;
    lines.push(`${label}: ${result.numPassedTests} passed, ${failed} failed, ${skipped} skipped (${seconds} s)`);
    if (code !== 0 && failed === 0) {
      totals.failed += 1; // e.g. it hung after the run, or an afterAll failed
      if (!hung) lines.push(`${label}: jest exited ${code} with no failed test`);
    }
  } else {
    lines.push(`${label}: ${code === 0 ? 'ok' : `failed (exit ${code})`} (${seconds} s)`);
    if (code !== 0) totals.failed += 1;
  }
  if (code !== 0) finish(1);
}

/**
 * The workspaces a root script runs `npm run test` in (`npm run test -w a -w b …`),
 * or null when the script has another form.
 */
function testWorkspaces(script) {
  const command = pkg.scripts?.[script] ?? '';
  if (!/^npm run test( -w \S+)+( --if-present)?$/.test(command)) return null;
  return [...command.matchAll(/-w (\S+)/g)].map((m) => m[1]);
}

/** Runs a root test script workspace by workspace, so each jest run reports its counts. */
async function testStep(script) {
  const workspaces = testWorkspaces(script);
  if (workspaces === null) return step(script, ['run', script]);
  for (const ws of workspaces) {
    const test = JSON.parse(fs.readFileSync(path.join(root, ws, 'package.json'), 'utf8')).scripts?.test;
    if (test === undefined) {
      lines.push(`${ws}: no test script`);
      continue;
    }
    if (/^jest\b/.test(test)) {
      const report = path.join(resultsDir, `${ws}.json`);
      // A workspace without tests yet shows as "0 passed", not as a failure.
      await step(`${script} ${ws}`, ['run', 'test', '-w', ws, '--', '--json', `--outputFile=${report}`, '--passWithNoTests'], report);
    } else {
      await step(`${script} ${ws}`, ['run', 'test', '-w', ws]);
    }
  }
}

// Passed on to the running step, which then fails and ends the run with the summary.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => current && signalStep(current, signal));

await step('build', ['run', 'build']);
await testStep('test:unit');
await testStep('test:e2e');
finish(0);
