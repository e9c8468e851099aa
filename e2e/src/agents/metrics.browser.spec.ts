/**
 * Metrics on the dashboard in real Chromium, with a real agent and the real
 * Docker engine: the machine page's charts (lazily loaded) fill with the
 * agent's samples and keep updating live, a running container gets its own
 * series, a container stopped on the engine turns exited on the same page,
 * and the machine list shows a CPU sparkline for the machine.
 *
 * UI contract: metrics-panel · metrics-charts (data-samples: host points
 * shown) · metrics-chart-cpu (a canvas once drawn) · metrics-chart-container-cpu
 * (data-containers) · metrics-cpu · cpu-sparkline (data-points) · and the
 * containers table's container-state (data-status).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { buildBusyboxImage, removeImages } from '@kapitan/agent/testing';
import { WEB_INDEX, describeOrSkip, launchBrowser, logIn, requireChromium, requireDockerSync, startServer, waitFor, type TestAgent, type TestBrowser, type TestServer } from '../harness';
import { setupProject, startOnlineAgent, type TestProject } from './fixtures';

const run = promisify(execFile);
const RUN = `browser-metrics-${process.pid}-${Date.now()}`;
const docker = async (...args: string[]): Promise<string> => (await run('docker', args, { timeout: 60_000 })).stdout.trim();

describeOrSkip(requireChromium(), requireDockerSync())('metrics on the machine page (SQLite, real agent, real Docker, Chromium)', () => {
  let server: TestServer;
  let p: TestProject;
  let agent: TestAgent;
  let browser: TestBrowser;
  let image = '';

  beforeAll(async () => {
    if (!fs.existsSync(WEB_INDEX)) throw new Error(`${WEB_INDEX} is missing: build the dashboard (npm run build -w web)`);
    image = (await buildBusyboxImage(`kapitan-test/browser-metrics:${RUN}`, RUN)).tag;
    server = await startServer({ database: 'sqlite', env: { KAPITAN_METRICS_WATCH_INTERVAL_MS: '500', KAPITAN_METRICS_RAW_INTERVAL_MS: '500' } });
    p = await setupProject(server.url, 'browser-metrics');
    agent = await startOnlineAgent(server.url, p, { env: { KAPITAN_AGENT_METRICS_INTERVAL_MS: '2000' } });
    browser = await launchBrowser({ baseURL: server.url });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await agent?.dispose();
    await server?.dispose();
    const ids = (await docker('ps', '-aq', '--filter', `label=kapitan.test=${RUN}`)).split('\n').filter(Boolean);
    if (ids.length) await docker('rm', '-f', ...ids);
    await removeImages(image);
  }, 60_000);

  test('charts fill and update live, a container has its series, its stop shows on the same page, the list has a sparkline', async () => {
    const page = browser.page;
    // no network for the containers: a veth appearing makes Chromium abort page loads (ERR_NETWORK_CHANGED)
    const busy = await docker('run', '-d', '--label', `kapitan.test=${RUN}`, '--name', `busy-${RUN}`, '--network', 'none', '-m', '64m', image, 'sh', '-c', "trap 'exit 0' TERM; while :; do :; done");
    const idle = await docker('run', '-d', '--label', `kapitan.test=${RUN}`, '--name', `idle-${RUN}`, '--network', 'none', image);
    await logIn(page, p.owner);
    await page.goto(`/projects/${p.projectId}/machines/${agent.machineId}`);
    const row = (id: string) => page.locator(`[data-testid="containers-table"] tr[data-container-id="${id}"]`);
    await row(busy).locator('[data-testid="container-state"][data-status="running"]').waitFor({ timeout: 20_000 });

    // the charts are deferred until they scroll into view
    const panel = page.getByTestId('metrics-panel');
    await page.locator('.metrics-placeholder').scrollIntoViewIfNeeded().catch(() => undefined);
    await panel.waitFor({ timeout: 20_000 });
    await panel.getByTestId('metrics-chart-cpu').locator('canvas').first().waitFor({ timeout: 20_000 });
    const samples = async (): Promise<number> => Number(await page.getByTestId('metrics-charts').getAttribute('data-samples'));
    await waitFor(async () => ((await samples()) >= 2 ? true : null), { timeoutMs: 30_000, message: 'samples in the charts' });
    const before = await samples();
    const cpuText = await page.getByTestId('metrics-cpu').textContent();
    expect(cpuText).toMatch(/%|—/);
    // live: watching makes the agent sample every 500 ms; the charts gain points without a reload
    await waitFor(async () => ((await samples()) >= before + 4 ? true : null), { timeoutMs: 30_000, message: 'live samples added to the charts' });
    await waitFor(async () => (Number(await page.getByTestId('metrics-chart-container-cpu').getAttribute('data-containers')) >= 2 ? true : null), {
      timeoutMs: 30_000,
      message: 'a series per running container',
    });

    // a container state change on the engine shows on the same page, while the charts keep going
    await docker('stop', '-t', '1', idle);
    await row(idle).locator('[data-testid="container-state"][data-status="exited"]').waitFor({ timeout: 20_000 });
    const afterStop = await samples();
    await waitFor(async () => ((await samples()) > afterStop ? true : null), { timeoutMs: 30_000, message: 'charts still updating' });
    // KAPITAN_E2E_METRICS_SCREENSHOT=<file.png> keeps a picture of the page (the README's docs/images/machine-page.png)
    if (process.env.KAPITAN_E2E_METRICS_SCREENSHOT) {
      // the page scrolls inside the layout, so a tall window is what shows containers and charts together
      await page.setViewportSize({ width: 1280, height: 1700 });
      const shown = await samples();
      await waitFor(async () => ((await samples()) > shown + 1 ? true : null), { timeoutMs: 30_000, message: 'charts redrawn at the new size' });
      await page.screenshot({ path: process.env.KAPITAN_E2E_METRICS_SCREENSHOT });
      await page.setViewportSize({ width: 1280, height: 800 });
    }

    // the machine list, by the app's own link (no page load for a Docker network change elsewhere to abort):
    // a CPU sparkline from the stored samples, then the live ones
    await page.locator('a.back').click();
    const spark = page.getByTestId('cpu-sparkline').first();
    await spark.waitFor({ timeout: 20_000 });
    await waitFor(async () => (Number(await spark.getAttribute('data-points')) >= 2 ? true : null), { timeoutMs: 30_000, message: 'sparkline points' });
    expect(await spark.locator('svg path').count()).toBe(1);
  }, 180_000);
});
