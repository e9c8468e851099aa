/**
 * Secrets in the run form and on the execution page, real server (embedded
 * SQLite), real agent, real Chromium: an owner picks a secret by name and
 * runs a script that prints it; the page shows its name and `***`, never the
 * value — not in the page, not in any API response it receives — and a
 * viewer sees the same (threat model T48).
 *
 * UI contract: run-secrets (multi-select of the project's secret names, an
 * option per name with data-secret-name) · execution-secrets (the names on
 * the execution page).
 */
import fs from 'node:fs';
import type { Page } from 'playwright-core';
import { WEB_INDEX, describeOrSkip, launchBrowser, logIn, requireChromium, signupUser, startServer, type TestAgent, type TestBrowser, type TestServer, type TestUser } from '../harness';
import { setupProject, startOnlineAgent, type TestProject } from './fixtures';

const VALUE = 'browser-S3cret-8e41b6d09c';

/** Every /api/ response body the page receives, to prove none carries the value. */
function recordApiResponses(page: Page): string[] {
  const bodies: string[] = [];
  page.on('response', (res) => {
    if (!new URL(res.url()).pathname.startsWith('/api/')) return;
    res.text().then(
      (t) => bodies.push(t),
      () => undefined,
    );
  });
  return bodies;
}

describeOrSkip(requireChromium())('secrets in the run form and the execution page (SQLite, real agent, Chromium)', () => {
  let server: TestServer;
  let p: TestProject;
  let viewer: TestUser;
  let agent: TestAgent;
  const browsers: TestBrowser[] = [];

  beforeAll(async () => {
    if (!fs.existsSync(WEB_INDEX)) throw new Error(`${WEB_INDEX} is missing: build the dashboard (npm run build -w web)`);
    server = await startServer({ database: 'sqlite' });
    p = await setupProject(server.url, 'browser-secrets');
    viewer = await signupUser(server.url, 'browser-secrets-viewer');
    await p.api.addMember(p.projectId, { email: viewer.email, role: 'viewer' });
    for (const [name, value] of [['DB_PASSWORD', VALUE], ['UNUSED_TOKEN', 'unused-value-3f2a']]) {
      expect((await p.api.request('POST', `/api/projects/${p.projectId}/secrets`, { body: { name, value } })).status).toBe(201);
    }
    agent = await startOnlineAgent(server.url, p);
  });
  afterAll(async () => {
    for (const b of browsers) await b.close();
    await agent?.dispose();
    await server?.dispose();
  });

  test('an owner picks a secret by name; the run sees it, the page shows its name and ***; a viewer sees the same', async () => {
    const owner = await launchBrowser({ baseURL: server.url });
    browsers.push(owner);
    const responses = recordApiResponses(owner.page);
    await logIn(owner.page, p.owner);
    await owner.page.goto(`/projects/${p.projectId}/run?machine=${agent.machineId}`);
    await owner.page.getByTestId('run-script').fill('#!/bin/sh\necho "pw $DB_PASSWORD"\necho "length ${#DB_PASSWORD}"\n');
    await owner.page.getByTestId('run-secrets').click();
    await owner.page.locator('mat-option[data-secret-name=DB_PASSWORD]').click();
    await owner.page.keyboard.press('Escape');
    await owner.page.getByTestId('run-submit').click();
    await owner.page.waitForURL(/\/executions\/[0-9a-f-]{36}/);
    const id = /executions\/([0-9a-f-]{36})/.exec(owner.page.url())![1];
    await owner.page.locator('[data-testid=execution-status]').filter({ hasText: /succeeded/i }).waitFor({ timeout: 30_000 });
    await owner.page.getByTestId('log-text').filter({ hasText: `length ${VALUE.length}` }).waitFor();
    expect(await owner.page.getByTestId('log-text').textContent()).toBe(`pw ***\nlength ${VALUE.length}\n`);
    expect(await owner.page.getByTestId('execution-secrets').textContent()).toContain('DB_PASSWORD');
    expect(await owner.page.getByTestId('execution-secrets').textContent()).not.toContain('UNUSED_TOKEN');
    expect((await p.api.getExecution(id)).secrets).toEqual(['DB_PASSWORD']);

    const seen = await launchBrowser({ baseURL: server.url });
    browsers.push(seen);
    const viewerResponses = recordApiResponses(seen.page);
    await logIn(seen.page, viewer);
    await seen.page.goto(`/projects/${p.projectId}/executions/${id}`);
    await seen.page.getByTestId('log-text').filter({ hasText: 'pw ***' }).waitFor();
    expect(await seen.page.getByTestId('execution-secrets').textContent()).toContain('DB_PASSWORD');

    for (const page of [owner.page, seen.page]) expect(await page.content()).not.toContain(VALUE);
    expect(responses.length).toBeGreaterThan(3);
    for (const body of [...responses, ...viewerResponses]) expect(body).not.toContain(VALUE);
  });
});
