/**
 * The machine page's containers in real Chromium, with a real agent and the
 * real Docker engine: a container started on the engine appears in the
 * table, stopping it from the page (with confirmation) turns it exited live,
 * starting it runs it again; its log follows in the log viewer; a create
 * from the form succeeds once the container runs; Docker's loss is shown.
 *
 * UI contract: containers-table (rows with data-container-id) ·
 * container-state (data-status) · container-stop / container-start /
 * container-logs · container-log-viewer (its hidden log-text) ·
 * container-create-open / create-image / create-name / create-labels /
 * create-submit · container-operation (data-status) · docker-status (data-available).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { buildBusyboxImage, DockerSocketProxy, removeImages } from '@kapitan/agent/testing';
import { WEB_INDEX, describeOrSkip, launchBrowser, logIn, makeTempDir, removeDir, requireChromium, requireDockerSync, startServer, waitFor, type TestAgent, type TestBrowser, type TestServer } from '../harness';
import { setupProject, startOnlineAgent, type TestProject } from './fixtures';

const run = promisify(execFile);
const RUN = `browser-${process.pid}-${Date.now()}`;
const docker = async (...args: string[]): Promise<string> => (await run('docker', args, { timeout: 60_000 })).stdout.trim();

describeOrSkip(requireChromium(), requireDockerSync())('containers on the machine page (SQLite, real agent, real Docker, Chromium)', () => {
  let server: TestServer;
  let p: TestProject;
  let agent: TestAgent;
  let browser: TestBrowser;
  let image = '';
  let dir = '';
  let proxy: DockerSocketProxy;

  beforeAll(async () => {
    if (!fs.existsSync(WEB_INDEX)) throw new Error(`${WEB_INDEX} is missing: build the dashboard (npm run build -w web)`);
    image = (await buildBusyboxImage(`kapitan-test/browser-containers:${RUN}`, RUN)).tag;
    dir = await makeTempDir('kapitan-e2e-docker-');
    proxy = new DockerSocketProxy(path.join(dir, 'docker.sock'));
    await proxy.restore();
    server = await startServer({ database: 'sqlite' });
    p = await setupProject(server.url, 'browser-containers');
    agent = await startOnlineAgent(server.url, p, { env: { KAPITAN_AGENT_DOCKER_SOCKET: proxy.socketPath, KAPITAN_AGENT_MAX_BACKOFF_MS: '1000' } });
    browser = await launchBrowser({ baseURL: server.url });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await agent?.dispose();
    await server?.dispose();
    await proxy?.cut();
    const ids = (await docker('ps', '-aq', '--filter', `label=kapitan.test=${RUN}`)).split('\n').filter(Boolean);
    if (ids.length) await docker('rm', '-f', ...ids);
    await removeImages(image);
    if (dir) await removeDir(dir);
  }, 60_000);

  test('state changes live, actions with confirmation, logs in the viewer, create from the form, Docker loss shown', async () => {
    const page = browser.page;
    // No network: a container's veth makes Chromium abort the page loads in flight (ERR_NETWORK_CHANGED).
    const id = await docker('run', '-d', '--network', 'none', '--label', `kapitan.test=${RUN}`, '--name', `web-${RUN}`, image, 'sh', '-c', "trap 'exit 0' TERM; i=0; echo '<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>'; while true; do i=$((i+1)); echo \"hello-$i\"; sleep 0.3; done");
    await logIn(page, p.owner);
    await page.goto(`/projects/${p.projectId}/machines/${agent.machineId}`);
    const row = page.locator(`[data-testid="containers-table"] tr[data-container-id="${id}"]`);
    await row.getByTestId('container-state').and(page.locator('[data-status="running"]')).waitFor({ timeout: 15_000 });
    await page.getByTestId('docker-status').and(page.locator('[data-available="true"]')).waitFor();

    // stop from the page: a confirmation, then exited live
    await row.getByTestId('container-stop').click();
    await page.getByTestId('confirm-ok').click();
    await row.locator('[data-testid="container-state"][data-status="exited"]').waitFor({ timeout: 20_000 });
    await page.locator('[data-testid="container-operation"][data-status="succeeded"]').first().waitFor({ timeout: 20_000 });
    await row.getByTestId('container-start').click();
    await row.locator('[data-testid="container-state"][data-status="running"]').waitFor({ timeout: 20_000 });

    // logs: the same viewer as executions, following live
    await row.getByTestId('container-logs').click();
    const text = page.getByTestId('container-log-viewer').getByTestId('log-text');
    const count = async (): Promise<number> => ((await text.textContent()) ?? '').split('\n').filter((l) => l.startsWith('hello-')).length;
    await waitFor(async () => ((await count()) > 0 ? true : null), { timeoutMs: 15_000, message: 'log lines in the viewer' });
    const before = await count();
    await waitFor(async () => ((await count()) > before + 2 ? true : null), { timeoutMs: 15_000, message: 'more live log lines' });
    // markup in a container's log is text (threat model T34): shown, never run or parsed
    expect(await text.textContent()).toContain('<img src=x onerror=');
    expect(await page.locator('[data-testid="container-log-viewer"] img').count()).toBe(0);
    expect(await page.evaluate('window.__pwned')).toBeUndefined();
    // follow again from now on: the viewer starts over, without the lines written before
    await page.getByTestId('container-logs-tail').click();
    await page.getByRole('option', { name: 'now on' }).click();
    await waitFor(async () => ((await count()) > 0 && !((await text.textContent()) ?? '').includes('<img') ? true : null), { timeoutMs: 15_000, message: 'a follow from now on' });
    await page.getByTestId('container-logs-close').click();

    // create from the form: the operation succeeds when the container runs, and it shows up
    await page.getByTestId('container-create-open').click();
    await page.getByTestId('create-image').fill(image);
    await page.getByTestId('create-name').fill(`made-${RUN}`);
    await page.getByTestId('create-labels').fill(`kapitan.test=${RUN}`);
    await page.getByTestId('create-submit').click();
    await page.locator('[data-testid="container-name"]', { hasText: `made-${RUN}` }).waitFor({ timeout: 20_000 });
    await page.locator('[data-testid="container-operation"][data-status="succeeded"]', { hasText: 'create' }).waitFor({ timeout: 30_000 });
    // KAPITAN_E2E_SCREENSHOT=<file.png> keeps a picture of the page (the README's)
    if (process.env.KAPITAN_E2E_SCREENSHOT) await page.screenshot({ path: process.env.KAPITAN_E2E_SCREENSHOT, fullPage: true });

    // the engine goes away: the page says so, with the agent's reason
    await proxy.cut();
    await page.locator('[data-testid="docker-status"][data-available="false"]').waitFor({ timeout: 15_000 });
    await proxy.restore();
    await page.locator('[data-testid="docker-status"][data-available="true"]').waitFor({ timeout: 15_000 });
  }, 180_000);
});
