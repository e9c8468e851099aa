/**
 * Run, deploy and distribute from the Files tab, in a real Chromium against
 * a real server and a real agent process: the targets are chosen in the
 * page, each machine's part is shown live (status, bytes), and a deploy the
 * agent refuses shows its reason.
 *
 * UI contract: file-row (data-name) with run-file, deploy-file,
 * distribute-file · file-action-panel (data-action) with target-all,
 * target-some, target-machine (data-machine-id), deploy-path, deploy-mode,
 * deploy-owner, action-submit, action-error · action-machine
 * (data-machine-id, data-status) with action-status, action-percent,
 * action-reason, action-execution, action-image, action-moved.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { buildBusyboxImage, imageId, removeImages, saveImage } from '@kapitan/agent/testing';
import { WEB_INDEX, describeOrSkip, launchBrowser, logIn, makeTempDir, removeDir, requireChromium, requireDockerSync, startServer, type TestAgent, type TestBrowser, type TestServer } from './harness';
import { setupProject, startOnlineAgent, type TestProject } from './agents/fixtures';

describeOrSkip(requireChromium())('deliveries in the dashboard (SQLite, Chromium, a real agent)', () => {
  let server: TestServer;
  let p: TestProject;
  let agent: TestAgent;
  let root: string;
  let browser: TestBrowser | undefined;

  beforeAll(async () => {
    if (!fs.existsSync(WEB_INDEX)) throw new Error(`${WEB_INDEX} is missing: build the dashboard (npm run build -w web)`);
    root = await makeTempDir('kapitan-e2e-browser-deploy-');
    server = await startServer({ database: 'sqlite' });
    p = await setupProject(server.url, 'deliveries-ui');
    agent = await startOnlineAgent(server.url, p, { env: { KAPITAN_AGENT_DEPLOY_DIRS: root } });
    browser = await launchBrowser({ baseURL: server.url });
    await logIn(browser.page, p.owner);
  });
  afterAll(async () => {
    await browser?.close();
    await agent?.dispose();
    await server?.dispose();
    if (root) await removeDir(root);
  });

  const row = (page: Page, name: string) => page.locator(`[data-testid=file-row][data-name="${name}"]`);
  const machineLine = (page: Page) => page.locator(`[data-testid=action-machine][data-machine-id="${agent.machineId}"]`);

  test('deploy a file to a chosen machine: its progress is shown live, it ends succeeded and the file is on the machine', async () => {
    const bytes = Buffer.from('listen 8080\n'.repeat(2000));
    await p.api.uploadFile(p.projectId, 'file', 'app.conf', bytes);
    const { page } = browser!;
    await page.goto(`/projects/${p.projectId}/files`);
    await row(page, 'app.conf').getByTestId('deploy-file').click();
    const panel = page.getByTestId('file-action-panel');
    await panel.getByTestId('target-some').click();
    await panel.locator(`[data-testid=target-machine][data-machine-id="${agent.machineId}"] input`).check();
    const target = path.join(root, 'app.conf');
    await panel.getByTestId('deploy-path').fill(target);
    await panel.getByTestId('deploy-mode').fill('0600');
    await panel.getByTestId('action-submit').click();
    await machineLine(page).and(page.locator('[data-status=succeeded]')).waitFor({ timeout: 30_000 });
    expect(await machineLine(page).getByTestId('action-percent').textContent()).toContain('100 %');
    expect(fs.readFileSync(target)).toEqual(bytes);
    expect(fs.statSync(target).mode & 0o777).toBe(0o600);
  });

  test('a deploy onto a planted symlink is refused by the agent, and the page shows why', async () => {
    await p.api.uploadFile(p.projectId, 'file', 'evil.conf', Buffer.from('x\n'));
    const victim = path.join(root, '..', `${path.basename(root)}-victim`);
    fs.writeFileSync(victim, 'precious\n');
    fs.symlinkSync(victim, path.join(root, 'planted.conf'));
    try {
      const { page } = browser!;
      await page.goto(`/projects/${p.projectId}/files`);
      await row(page, 'evil.conf').getByTestId('deploy-file').click();
      const panel = page.getByTestId('file-action-panel');
      await panel.getByTestId('deploy-path').fill(path.join(root, 'planted.conf'));
      await panel.getByTestId('action-submit').click();
      await machineLine(page).and(page.locator('[data-status=failed]')).waitFor({ timeout: 30_000 });
      expect(await machineLine(page).getByTestId('action-reason').textContent()).toContain('symbolic link');
      expect(fs.readFileSync(victim, 'utf8')).toBe('precious\n');
    } finally {
      fs.rmSync(victim, { force: true });
    }
  });

  test('a path the server refuses is shown in the page before anything is sent', async () => {
    const { page } = browser!;
    await page.goto(`/projects/${p.projectId}/files`);
    await row(page, 'app.conf').getByTestId('deploy-file').click();
    const panel = page.getByTestId('file-action-panel');
    await panel.getByTestId('deploy-path').fill('relative/path');
    await panel.getByTestId('action-submit').click();
    await panel.getByTestId('action-error').filter({ hasText: /path/ }).waitFor();
    expect(await page.getByTestId('action-machine').count()).toBe(0);
  });

  test('run an uploaded script from its row: the run ends succeeded and links to its output', async () => {
    await p.api.uploadFile(p.projectId, 'script', 'hello.sh', Buffer.from('#!/bin/sh\necho hello from the files tab\n'));
    const { page } = browser!;
    await page.goto(`/projects/${p.projectId}/files`);
    await row(page, 'hello.sh').getByTestId('run-file').click();
    await page.getByTestId('file-action-panel').getByTestId('action-submit').click();
    await machineLine(page).and(page.locator('[data-status=succeeded]')).waitFor({ timeout: 30_000 });
    await machineLine(page).getByTestId('action-execution').click();
    await page.waitForURL(/\/executions\/[0-9a-f-]{36}$/);
    const executionId = page.url().split('/').pop()!;
    expect(await p.api.getExecutionLogText(executionId)).toBe('hello from the files tab\n');
  });

  test('distribute an image from its row: the page shows the load, then the loaded image id, and the real engine has it', async () => {
    // The skip rule: locally a missing engine prints its reason, under CI=true it fails.
    if (requireDockerSync()) return;
    const tag = `kapitan-test/distribute-ui:${process.pid}-${Date.now()}`;
    const dir = await makeTempDir('kapitan-e2e-image-ui-');
    try {
      const built = await buildBusyboxImage(tag, `distribute-ui ${tag}`);
      const tarball = path.join(dir, 'image.tar');
      await saveImage(tag, tarball);
      await removeImages(tag, built.id);
      expect(await imageId(built.id)).toBeNull();
      await p.api.uploadFile(p.projectId, 'image', 'app-image.tar', fs.readFileSync(tarball));
      const { page } = browser!;
      await page.goto(`/projects/${p.projectId}/files`);
      await row(page, 'app-image.tar').getByTestId('distribute-file').click();
      const panel = page.getByTestId('file-action-panel');
      // Every status the machine's line shows, in the order the page rendered them.
      // (A string: the e2e project has no DOM types.)
      await page.evaluate(`(() => {
        const seen = (window.seenStatuses = []);
        const note = () => {
          for (const el of document.querySelectorAll('[data-testid=action-machine]')) {
            const s = el.getAttribute('data-status');
            if (s && seen[seen.length - 1] !== s) seen.push(s);
          }
        };
        new MutationObserver(note).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-status'] });
      })()`);
      await panel.getByTestId('action-submit').click();
      await machineLine(page).and(page.locator('[data-status=succeeded]')).waitFor({ timeout: 60_000 });
      expect(await machineLine(page).getByTestId('action-percent').textContent()).toContain('100 %');
      expect(await machineLine(page).getByTestId('action-image').getAttribute('title')).toBe(built.id);
      // What moved: the engine had none of its layers, so the tarball went whole.
      expect(await machineLine(page).getByTestId('action-moved').textContent()).toMatch(/^\s*moved [\d.]+ (KiB|MiB) of [\d.]+ (KiB|MiB), 0 of 1 layers present\s*$/);
      const seen = (await page.evaluate('window.seenStatuses')) as string[];
      // The load is shown before the result, and nothing goes backwards.
      expect(seen).toContain('loading');
      const order = ['queued', 'dispatched', 'downloading', 'loading', 'succeeded'];
      expect(seen.map((s) => order.indexOf(s))).toEqual([...seen.map((s) => order.indexOf(s))].sort((a, b) => a - b));
      expect(seen.every((s) => order.includes(s))).toBe(true);
      expect(await imageId(tag)).toBe(built.id);
    } finally {
      await removeImages(tag);
      await removeDir(dir);
    }
  });
});
