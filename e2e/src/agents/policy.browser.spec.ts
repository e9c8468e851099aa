/**
 * The client policy in the dashboard, real server (embedded SQLite), real
 * agent with a root-owned policy file, real Chromium: the machine page shows
 * the policy the agent reported, and a run the policy refuses shows
 * `refused by policy` with the rule, live, on the execution page
 * (threat model T71–T74).
 *
 * UI contract: machine-policy (panel on the machine page), policy-source,
 * policy-scripts, policy-deploys, policy-docker, policy-readonly ·
 * execution-status (data-status="refused"), execution-reason.
 */
import fs from 'node:fs';
import path from 'node:path';
import { WEB_INDEX, describeOrSkip, launchBrowser, logIn, makeTempDir, removeDir, requireChromium, startServer, waitFor, type TestAgent, type TestBrowser, type TestServer } from '../harness';
import { setupProject, startOnlineAgent, type TestProject } from './fixtures';

describeOrSkip(requireChromium())('client policy in the dashboard (SQLite, real agent, Chromium)', () => {
  let server: TestServer;
  let p: TestProject;
  let agent: TestAgent;
  let dir: string;
  let file: string;
  let browser: TestBrowser;

  beforeAll(async () => {
    if (!fs.existsSync(WEB_INDEX)) throw new Error(`${WEB_INDEX} is missing: build the dashboard (npm run build -w web)`);
    dir = await makeTempDir('kapitan-e2e-policy-browser-');
    fs.chmodSync(dir, 0o700);
    file = path.join(dir, 'agent-policy.json');
    fs.writeFileSync(file, JSON.stringify({ scripts: { enabled: false }, docker: { images: ['busybox:*'] } }), { mode: 0o644 });
    server = await startServer({ database: 'sqlite' });
    p = await setupProject(server.url, 'browser-policy');
    agent = await startOnlineAgent(server.url, p, { env: { KAPITAN_AGENT_POLICY_FILE: file } });
    await waitFor(async () => (await p.api.getMachine(p.projectId, agent.machineId)).policy, { timeoutMs: 30_000, message: 'the policy report' });
  });
  afterAll(async () => {
    await browser?.close();
    await agent?.dispose();
    await server?.dispose();
    if (dir) await removeDir(dir);
  });

  test('the machine page shows the reported policy; a run it refuses shows refused with the rule', async () => {
    browser = await launchBrowser({ baseURL: server.url });
    const page = browser.page;
    await logIn(page, p.owner);
    await page.goto(`/projects/${p.projectId}/machines/${agent.machineId}`);
    const panel = page.getByTestId('machine-policy');
    await panel.waitFor();
    expect(await page.getByTestId('policy-source').textContent()).toContain(file);
    expect((await page.getByTestId('policy-scripts').textContent())!.trim()).toBe('disabled');
    expect(await page.getByTestId('policy-docker').textContent()).toMatch(/allowed\s+· images\s+busybox:\*/);
    expect(await page.getByTestId('policy-readonly').textContent()).toContain('no');

    await page.getByTestId('machine-run').click();
    await page.getByTestId('run-script').fill('echo refused?\n');
    await page.getByTestId('run-submit').click();
    await page.waitForURL(/\/executions\/[0-9a-f-]{36}/);
    const id = /executions\/([0-9a-f-]{36})/.exec(page.url())![1];
    await page.locator('[data-testid=execution-status][data-status=refused]').waitFor({ timeout: 30_000 });
    expect(await page.getByTestId('execution-status').textContent()).toContain('refused by policy');
    const reason = `refused by the client policy (${file}): scripts are disabled (scripts.enabled: false)`;
    expect((await page.getByTestId('execution-reason').textContent())!.trim()).toBe(reason);
    expect(await page.getByTestId('execution-started').textContent()).toContain('never');
    expect(await p.api.getExecution(id)).toMatchObject({ status: 'refused', reason });
  });
});
