/**
 * The dashboard's live log in real Chromium against a real server and a real
 * agent: output appears while the script still runs (issue: agents), and
 * output that tries to inject HTML or terminal escapes stays text
 * (threat model T34).
 */
import {
  describeOrSkip,
  launchBrowser,
  requireChromium,
  requireMysql,
  startServer,
  waitFor,
  type TestAgent,
  type TestBrowser,
  type TestServer,
} from '../harness';
import { setupProject, startOnlineAgent, type TestProject } from './fixtures';

describeOrSkip(requireMysql(), requireChromium())('live log in the dashboard (MySQL, real agent, Chromium)', () => {
  let server: TestServer;
  let p: TestProject;
  let agent: TestAgent;
  let browser: TestBrowser;

  beforeAll(async () => {
    server = await startServer({ database: 'mysql' });
    p = await setupProject(server.url, 'browser-live');
    agent = await startOnlineAgent(server.url, p);
    browser = await launchBrowser({ baseURL: server.url });
    const { page } = browser;
    await page.goto('/login');
    await page.getByTestId('email').fill(p.owner.email);
    await page.getByTestId('password').fill(p.owner.password);
    await page.getByTestId('login-submit').click();
    await page.waitForURL(/\/projects/);
  });
  afterAll(async () => {
    await browser?.close();
    await agent?.dispose();
    await server?.dispose();
  });

  test('output started from the run form appears on the page while the script is still running', async () => {
    const { page } = browser;
    await page.goto(`/projects/${p.projectId}/run?machine=${agent.machineId}`);
    await page.getByTestId('run-script').fill('#!/bin/sh\necho "first line"\nsleep 4\necho "last line"\n');
    await page.getByTestId('run-submit').click();
    await page.waitForURL(/\/executions\/[0-9a-f-]{36}/);
    const executionId = /executions\/([0-9a-f-]{36})/.exec(page.url())![1];
    await page.getByTestId('log-text').filter({ hasText: 'first line' }).waitFor();
    // The page shows the first line while the process is still sleeping: live, not at the end.
    expect((await p.api.getExecution(executionId)).status).toBe('running');
    expect(await page.getByTestId('log-text').textContent()).not.toContain('last line');
    await page.locator('[data-testid=execution-status]').filter({ hasText: /succeeded/i }).waitFor({ timeout: 20_000 });
    await page.getByTestId('log-text').filter({ hasText: 'last line' }).waitFor();
    expect(await page.getByTestId('log-text').textContent()).toBe('first line\nlast line\n');
  });

  test('HTML and terminal escape sequences in output render as text; nothing runs in the page', async () => {
    const { page } = browser;
    const script = [
      '#!/bin/sh',
      `echo '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b id="injected">bold</b>'`,
      // OSC 0 (window title), OSC 52 (clipboard write) and OSC 8 (hyperlink): nothing of them may reach the page.
      `printf '\\033]0;pwned-title\\007\\033]52;c;cHduZWQ=\\007\\033]8;;javascript:window.__pwned=3\\007click\\033]8;;\\007\\n'`,
      'echo done',
    ].join('\n');
    const run = await p.api.createExecution(p.projectId, { script, targets: { machineIds: [agent.machineId] } });
    const id = run.executions[0].id;
    await page.goto(`/projects/${p.projectId}/executions/${id}`);
    await page.getByTestId('log-text').filter({ hasText: 'done' }).waitFor();
    const text = await page.getByTestId('log-text').textContent();
    expect(text).toContain('<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b id="injected">bold</b>');
    expect(await page.locator('#injected').count()).toBe(0);
    expect(await page.locator('[data-testid=log-viewer] img, [data-testid=log-viewer] script').count()).toBe(0);
    expect(await page.evaluate('window.__pwned')).toBeUndefined();
    expect(await page.title()).not.toContain('pwned');
    const links = await page.locator('a[href^="javascript:"]').count();
    expect(links).toBe(0);
    await waitFor(async () => (await p.api.getExecution(id)).status === 'succeeded', { timeoutMs: 10_000, message: 'run done' });
  });
});
