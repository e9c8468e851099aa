/**
 * 10. The dashboard's log viewer under a chatty feed, in headless Chromium
 * (playwright-core, /usr/bin/chromium, the e2e harness's launchBrowser): an
 * execution's live log page, then a container's logs on the machine page,
 * each fed 5,000 lines a second by a REAL agent (agent/dist, its own
 * /bin/sh and the real Docker engine): the execution runs a script that
 * prints 500 numbered lines every 0.1 s; the container (busybox image)
 * prints the same once it is told to start. Checked: every line sent is
 * counted by the viewer and the last ones shown are the last ones sent, in
 * order. Measured: the tab's JS heap (CDP Runtime.getHeapUsage, each
 * second), long tasks (PerformanceObserver 'longtask'), and how soon the
 * page answers a click during the feed (the event's timestamp → its handler
 * → the next frame). The baseline is the same page in the same tab, left
 * without a feed for as long.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { CDPSession, Page } from 'playwright-core';
import { buildBusyboxImage, removeImages } from '@kapitan/agent/testing';
import { isFinalStatus } from '@kapitan/shared';
import { WEB_INDEX, launchBrowser, logIn, requireChromium, requireDockerSync, startServer, waitFor, type TestAgent, type TestBrowser } from '../../src/harness';
import { setupProject, startOnlineAgent } from '../../src/agents/fixtures';
import type { Row, ScenarioResult } from '../lib/report';
import { sleep, summarize, type Summary } from '../lib/stats';
import type { BenchContext, Scenario } from '../lib/context';

const run = promisify(execFile);
const docker = async (...args: string[]): Promise<string> => (await run('docker', args, { timeout: 60_000 })).stdout.trim();
const PER_TENTH = 500;
const HEAP_LIMIT = 300 * 1024 * 1024;
const EXEC_LINE = (n: number): string => `chatty line ${n}: the quick brown fox jumps over the lazy dog, 0123456789`;
const CONTAINER_LINE = (n: number): string => `container line ${n}: the quick brown fox jumps over the lazy dog, 0123456789`;

/** Waits for `go` (a file the runner creates once the page is open and measured idle), then prints. */
function executionScript(seconds: number, go: string): string {
  return [
    '#!/bin/sh',
    `while [ ! -e ${go} ]; do sleep 0.1; done`,
    'i=0',
    `while [ $i -lt ${seconds * 10} ]; do`,
    `  seq -f "chatty line %.0f: the quick brown fox jumps over the lazy dog, 0123456789" $((i*${PER_TENTH}+1)) $((i*${PER_TENTH}+${PER_TENTH}))`,
    '  sleep 0.1',
    '  i=$((i+1))',
    'done',
    '',
  ].join('\n');
}

function containerCommand(seconds: number): string {
  return [
    "trap 'exit 0' TERM",
    'while [ ! -e /tmp/go ]; do sleep 0.1; done',
    'i=0',
    `while [ $i -lt ${seconds * 10} ]; do`,
    `  busybox awk -v a=$((i*${PER_TENTH}+1)) -v b=$((i*${PER_TENTH}+${PER_TENTH})) 'BEGIN { for (n = a; n <= b; n++) print "container line " n ": the quick brown fox jumps over the lazy dog, 0123456789" }'`,
    '  sleep 0.1',
    '  i=$((i+1))',
    'done',
    'while true; do sleep 1; done',
  ].join('\n');
}

/** Installed before any page script: long tasks from the first one on, and a probe for click latency. */
const PAGE_PROBES = `
  window.__bench = { longtasks: [], clicks: [] };
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__bench.longtasks.push({ start: e.startTime, duration: e.duration });
    }).observe({ type: 'longtask', buffered: true });
  } catch (e) {}
  document.addEventListener('click', (ev) => {
    if (!ev.target || !ev.target.closest || !ev.target.closest('[data-bench-probe]')) return;
    const handled = performance.now();
    requestAnimationFrame(() => requestAnimationFrame(() => {
      window.__bench.clicks.push({ handlerMs: handled - ev.timeStamp, frameMs: performance.now() - ev.timeStamp });
    }));
  }, true);
`;

interface Observed {
  seconds: number;
  heapMaxBytes: number;
  heapLastBytes: number;
  longTasks: number;
  longTaskMs: number;
  longestTaskMs: number;
  clickToHandler: Summary;
  clickToFrame: Summary;
  /** Runner side: CDP Input.dispatchMouseEvent (press and release) until the page acknowledged it. */
  clickRoundTrip: Summary;
}

interface FeedOutcome extends Observed {
  linesSent: number;
  linesCounted: number;
  tailInOrder: boolean;
  lastLine: string;
  /** Lines that are not feed lines in the viewer's text (notes of dropped lines, gaps). */
  notes: string[];
  /** The feed's own rate, from its first to its last line at the viewer. */
  linesPerS: number;
}

/** Samples heap each second, clicks the probe every 2 s, and gathers the page's long tasks over `run`. */
async function observe<T>(page: Page, cdp: CDPSession, probe: string, body: () => Promise<T>): Promise<{ result: T; window: Observed }> {
  // No DOM types in the bench's tsconfig: what runs in the page is written as a string.
  await page.evaluate(`(() => {
    window.__bench.longtasks.length = 0;
    window.__bench.clicks.length = 0;
    document.querySelector(${JSON.stringify(probe)})?.setAttribute('data-bench-probe', '');
  })()`);
  const heap: number[] = [];
  let stop = false;
  const sampler = (async () => {
    while (!stop) {
      const h = (await cdp.send('Runtime.getHeapUsage')) as { usedSize: number };
      heap.push(h.usedSize);
      await sleep(1000);
    }
  })();
  // Raw mouse input at the probe (no actionability waits: those would measure Playwright, not the page).
  const target = page.locator('[data-bench-probe]').first();
  await target.scrollIntoViewIfNeeded();
  const box = await target.boundingBox();
  if (!box) throw new Error(`log-viewer: the click probe ${probe} is not on the page`);
  const clickRoundTrips: number[] = [];
  const clicker = (async () => {
    while (!stop) {
      await sleep(2000);
      if (stop) break;
      const c0 = Date.now();
      await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
      clickRoundTrips.push(Date.now() - c0);
    }
  })();
  const t0 = Date.now();
  let result: T;
  try {
    result = await body();
  } finally {
    stop = true;
    await Promise.all([sampler, clicker]);
  }
  const seconds = (Date.now() - t0) / 1000;
  const probes = (await page.evaluate('window.__bench')) as { longtasks: { duration: number }[]; clicks: { handlerMs: number; frameMs: number }[] };
  return {
    result,
    window: {
      seconds,
      heapMaxBytes: Math.max(...heap),
      heapLastBytes: heap[heap.length - 1] ?? NaN,
      longTasks: probes.longtasks.length,
      longTaskMs: probes.longtasks.reduce((a, t) => a + t.duration, 0),
      longestTaskMs: probes.longtasks.reduce((a, t) => Math.max(a, t.duration), 0),
      clickToHandler: summarize(probes.clicks.map((c) => c.handlerMs)),
      clickToFrame: summarize(probes.clicks.map((c) => c.frameMs)),
      clickRoundTrip: summarize(clickRoundTrips),
    },
  };
}

/** What the viewer (one `app-log-viewer`) says it holds: its line count and the hidden text of the last 2,000 lines. */
async function viewerState(page: Page, viewer: string): Promise<{ count: number; text: string }> {
  return page.evaluate(`(() => {
    const root = document.querySelector(${JSON.stringify(viewer)});
    const count = Number((root?.querySelector('[data-testid="log-line-count"]')?.textContent ?? '').trim().split(/\\s+/)[0]);
    return { count, text: root?.querySelector('[data-testid="log-text"]')?.textContent ?? '' };
  })()`);
}

/** Waits until the viewer has counted `lines` feed lines; then checks its tail is the end of the feed, in order. */
async function checkFeed(page: Page, viewer: string, lines: number, line: (n: number) => string, pattern: RegExp, timeoutMs: number): Promise<Omit<FeedOutcome, keyof Observed>> {
  let first = 0;
  let firstCount = 0;
  let last = 0;
  const deadline = Date.now() + timeoutMs;
  let state = await viewerState(page, viewer);
  for (;;) {
    const feedLines = state.text.split('\n').filter((l) => pattern.test(l));
    const lastN = Number(pattern.exec(feedLines[feedLines.length - 1] ?? '')?.[1] ?? 0);
    if (lastN > 0 && !first) {
      first = Date.now();
      firstCount = lastN;
    }
    if (lastN > 0) last = Date.now();
    if (lastN >= lines || Date.now() > deadline) break;
    await sleep(500);
    state = await viewerState(page, viewer);
  }
  // The toolbar's count is a signal, drawn at the next change detection: give it a moment to catch up with the text.
  const countBy = Date.now() + 10_000;
  while (state.count < lines && Date.now() < countBy) {
    await sleep(250);
    state = await viewerState(page, viewer);
  }
  const all = state.text.split('\n').filter(Boolean);
  const feed = all.filter((l) => pattern.test(l));
  const notes = all.filter((l) => !pattern.test(l));
  const tail = feed.slice(-Math.min(feed.length, 1500));
  const end = Number(pattern.exec(tail[tail.length - 1] ?? '')?.[1] ?? 0);
  const tailInOrder = end === lines && tail.every((l, i) => l === line(end - tail.length + 1 + i));
  return {
    linesSent: lines,
    linesCounted: state.count - notes.length,
    tailInOrder,
    lastLine: tail[tail.length - 1] ?? '',
    notes: notes.slice(0, 5),
    linesPerS: last > first ? (lines - firstCount) / ((last - first) / 1000) : NaN,
  };
}

export const logViewer: Scenario = {
  name: 'log-viewer',
  title: '12. Log viewer in Chromium: 5,000 lines a second',
  async run(ctx: BenchContext): Promise<ScenarioResult> {
    const t0 = Date.now();
    const seconds = ctx.n ?? (ctx.size === 'large' ? 60 : 20);
    const lines = seconds * PER_TENTH * 10;
    for (const reason of [requireChromium(), requireDockerSync()]) if (reason) throw new Error(reason);
    if (!fs.existsSync(WEB_INDEX)) throw new Error(`${WEB_INDEX} is missing: build the dashboard (npm run build -w web)`);
    const tag = `kapitan-bench/log-viewer:${process.pid}-${Date.now()}`;
    const image = (await buildBusyboxImage(tag, tag)).tag;
    const server = await startServer({ database: 'sqlite', env: { LOG_LEVEL: 'warn' } });
    let browser: TestBrowser | null = null;
    let agent: TestAgent | null = null;
    let containerId = '';
    try {
      const p = await setupProject(server.url, 'bench-log-viewer');
      agent = await startOnlineAgent(server.url, p, { env: { KAPITAN_AGENT_LOG_LEVEL: 'warn' } });
      browser = await launchBrowser({ baseURL: server.url, timeoutMs: 60_000 });
      const page = browser.page;
      await page.addInitScript(PAGE_PROBES);
      const cdp = await browser.context.newCDPSession(page);
      await logIn(page, p.owner);

      // ---- an execution's live log page
      ctx.log(`log-viewer: execution page, ${lines} lines over ${seconds} s`);
      const go = path.join(os.tmpdir(), `kapitan-bench-go-${process.pid}-${Date.now()}`);
      const created = await p.api.createExecution(p.projectId, { script: executionScript(seconds, go), targets: { machineIds: [agent.machineId] } });
      const executionId = created.executions[0]!.id;
      await page.goto(`/projects/${p.projectId}/executions/${executionId}`);
      await page.locator('app-log-viewer [data-testid="log-viewer"]').waitFor();
      const idleExec = (await observe(page, cdp, '.page-header h2', () => sleep(Math.min(seconds, 10) * 1000))).window;
      let goAt = 0;
      const exec = await observe(page, cdp, '.page-header h2', async () => {
        fs.writeFileSync(go, '');
        goAt = Date.now();
        return checkFeed(page, 'app-log-viewer', lines, EXEC_LINE, /^chatty line (\d+):/, seconds * 1000 + 180_000);
      });
      fs.rmSync(go, { force: true });
      await waitFor(async () => (isFinalStatus((await p.api.getExecution(executionId)).status) ? true : null), { timeoutMs: 120_000, message: 'the chatty execution to finish' });
      const finalExec = await p.api.getExecution(executionId);
      const execStored = finalExec.status;
      // The script's own pace, from the moment it was told to start to its end (the server's clock, same host).
      const scriptRate = finalExec.finishedAt ? lines / ((Date.parse(finalExec.finishedAt) - goAt) / 1000) : NaN;
      ctx.log(`log-viewer: execution ${execStored}; viewer counted ${exec.result.linesCounted}/${lines}, heap max ${(exec.window.heapMaxBytes / 2 ** 20).toFixed(0)} MB`);

      // ---- a container's logs on the machine page
      containerId = await docker('run', '-d', '--label', `kapitan.bench=${tag}`, image, 'sh', '-c', containerCommand(seconds));
      await page.goto(`/projects/${p.projectId}/machines/${agent.machineId}`);
      const row = page.locator(`[data-testid="containers-table"] tr[data-container-id="${containerId}"]`);
      await row.locator('[data-testid="container-state"][data-status="running"]').waitFor({ timeout: 60_000 });
      await row.getByTestId('container-logs').click();
      const viewer = '[data-testid="container-log-viewer"]';
      await page.locator(`${viewer} [data-testid="log-viewer"]`).waitFor();
      const idleCont = (await observe(page, cdp, '.logs-head .title', () => sleep(Math.min(seconds, 10) * 1000))).window;
      ctx.log(`log-viewer: container logs, ${lines} lines over ${seconds} s`);
      const cont = await observe(page, cdp, '.logs-head .title', async () => {
        await docker('exec', containerId, 'touch', '/tmp/go');
        return checkFeed(page, viewer, lines, CONTAINER_LINE, /^container line (\d+):/, seconds * 1000 + 180_000);
      });
      ctx.log(`log-viewer: container viewer counted ${cont.result.linesCounted}/${lines}, heap max ${(cont.window.heapMaxBytes / 2 ** 20).toFixed(0)} MB`);
      const e: FeedOutcome = { ...exec.result, ...exec.window };
      const c: FeedOutcome = { ...cont.result, ...cont.window };
      const mb = (b: number): number => b / 2 ** 20;
      const rows: Row[] = [];
      rows.push({ metric: "execution page: the script's own rate (told to start → finished)", unit: 'lines/s', kapitan: scriptRate, baseline: null });
      for (const [label, f, idle] of [
        ['execution page', e, idleExec],
        ['container logs', c, idleCont],
      ] as const) {
        rows.push(
          { metric: `${label}: lines counted by the viewer / sent`, kapitan: `${f.linesCounted}/${f.linesSent}`, baseline: 'n/a', goal: 'all', met: f.linesCounted === f.linesSent },
          { metric: `${label}: last 1,500 lines shown are the feed's last, in order`, kapitan: f.tailInOrder ? 'yes' : 'no', baseline: 'n/a', goal: 'yes', met: f.tailInOrder },
          { metric: `${label}: feed rate at the viewer`, unit: 'lines/s', kapitan: f.linesPerS, baseline: null },
          { metric: `${label}: JS heap max`, unit: 'MB', kapitan: mb(f.heapMaxBytes), baseline: mb(idle.heapMaxBytes), goal: '< 300 MB', met: f.heapMaxBytes < HEAP_LIMIT },
          { metric: `${label}: JS heap at the end`, unit: 'MB', kapitan: mb(f.heapLastBytes), baseline: mb(idle.heapLastBytes) },
          { metric: `${label}: long tasks (> 50 ms)`, kapitan: f.longTasks, baseline: idle.longTasks },
          { metric: `${label}: time in long tasks`, unit: '% of the time', kapitan: (f.longTaskMs / 10 / f.seconds), baseline: idle.longTaskMs / 10 / idle.seconds },
          { metric: `${label}: longest task`, unit: 'ms', kapitan: f.longestTaskMs, baseline: idle.longestTaskMs },
          { metric: `${label}: click → handler p50`, unit: 'ms', kapitan: f.clickToHandler.p50, baseline: idle.clickToHandler.p50 },
          { metric: `${label}: click → handler max`, unit: 'ms', kapitan: f.clickToHandler.max, baseline: idle.clickToHandler.max },
          { metric: `${label}: click → next frame painted max`, unit: 'ms', kapitan: f.clickToFrame.max, baseline: idle.clickToFrame.max },
          { metric: `${label}: click dispatched → acknowledged by the page, max`, unit: 'ms', kapitan: f.clickRoundTrip.max, baseline: idle.clickRoundTrip.max },
        );
      }
      return {
        name: 'log-viewer',
        title: this.title,
        size: ctx.size,
        params: { seconds, linesPerSecond: PER_TENTH * 10, lines, db: 'sqlite' },
        rows,
        notes: [
          `Fed by a real agent (agent/dist) on a Kapitan server with SQLite: the execution's /bin/sh prints ${PER_TENTH} numbered lines of 80 bytes every 0.1 s for ${seconds} s (so a little under 5,000 lines/s: the sleep adds to the printing), the container (busybox) the same with awk; each starts when the runner tells it to (a file it creates; for the container \`docker exec … touch /tmp/go\`), once the viewer is open and has been measured idle. Execution final status: ${execStored}.`,
          '"Counted by the viewer": the count in its toolbar (every line it wrote to the terminal; the terminal keeps 200,000 lines of scrollback), less lines that are not feed lines (a note of dropped container log lines would be one). "In order": the hidden plain-text copy of its last lines, compared line by line with what was sent.',
          `Heap: CDP Runtime.getHeapUsage of the tab each second (used heap, garbage included: no GC is forced; the container page's idle window follows the execution page in the same tab). Long tasks: PerformanceObserver \'longtask\'. Clicks: every 2 s a click on the page's heading (${e.clickToHandler.count} and ${c.clickToHandler.count} clicks), from the event's timestamp to its handler and to the second animation frame after it, and on the runner's side until Chromium acknowledged the input. Baseline: the same page, same tab, ${Math.min(seconds, 10)} s without a feed.`,
          ...(c.notes.length ? [`Container viewer notes: ${c.notes.join(' | ')}`] : []),
        ],
        durationS: (Date.now() - t0) / 1000,
        raw: { execution: e, container: c, idleExecution: idleExec, idleContainer: idleCont, scriptRate },
      };
    } finally {
      await browser?.close();
      await agent?.dispose();
      if (containerId) await docker('rm', '-f', containerId).catch(() => undefined);
      await server.dispose();
      await removeImages(image).catch(() => undefined);
    }
  },
};
