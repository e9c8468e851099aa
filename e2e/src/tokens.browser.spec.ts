/**
 * API tokens in the dashboard, real server (embedded SQLite), real Chromium:
 * a user creates a token from the API tokens page, sees its value once,
 * the token drives the API within its role, and revoking it (after a
 * confirmation) refuses it from the next request on.
 *
 * UI contract: nav-tokens link · new-api-token button · api-token-name,
 * api-token-project, api-token-role, api-token-expiry, api-token-submit in the
 * dialog · api-token-value and copy-api-token once created, api-token-done ·
 * api-token-row per token (data-id) with revoke-api-token · confirm-ok.
 */
import fs from 'node:fs';
import type { Page } from 'playwright-core';
import type { ApiToken } from '@kapitan/shared';
import {
  logIn,
  WEB_INDEX,
  describeOrSkip,
  launchBrowser,
  requireChromium,
  signupUser,
  startServer,
  type TestBrowser,
  type TestServer,
  type TestUser,
} from './harness';

describeOrSkip(requireChromium())('API tokens in the dashboard (SQLite, Chromium)', () => {
  let server: TestServer;
  let owner: TestUser;
  let projectId: string;
  let browser: TestBrowser | undefined;

  beforeAll(async () => {
    if (!fs.existsSync(WEB_INDEX)) throw new Error(`${WEB_INDEX} is missing: build the dashboard (npm run build -w web)`);
    server = await startServer({ database: 'sqlite' });
    owner = await signupUser(server.url, 'tokens-owner');
    projectId = (await owner.api.createProject({ name: 'tokens' })).id;
  });
  afterAll(async () => {
    await browser?.close();
    await server?.dispose();
  });

  test('create shows the value once; the token works in its role; revoke refuses it at once', async () => {
    browser = await launchBrowser({ baseURL: server.url });
    const { page } = browser;
    await logIn(page, owner);
    await page.getByTestId('nav-tokens').click();
    await page.waitForURL(/\/tokens$/);

    await page.getByTestId('new-api-token').click();
    await page.getByTestId('api-token-name').fill('ci deploy');
    await page.getByTestId('api-token-role').click();
    await page.getByRole('option', { name: 'viewer' }).click();
    await page.getByTestId('api-token-submit').click();
    const value = (await page.getByTestId('api-token-value').textContent())?.trim() ?? '';
    expect(value).toMatch(/^kpt_[0-9a-f-]{36}\.[A-Za-z0-9_-]{43}$/);
    await page.getByTestId('copy-api-token').waitFor();
    await page.getByTestId('api-token-done').click();

    const [listed] = (await owner.api.request<ApiToken[]>('GET', '/api/tokens')).body;
    expect(listed).toMatchObject({ name: 'ci deploy', projectId, role: 'viewer', projectName: 'tokens' });
    const row = page.locator(`[data-testid=api-token-row][data-id="${listed.id}"]`);
    await row.waitFor();
    // Once the dialog is closed the value is nowhere in the page.
    expect(await page.content()).not.toContain(value.split('.')[1]);

    const asToken = owner.api.withToken(value);
    expect((await asToken.request('GET', `/api/projects/${projectId}`)).status).toBe(200);
    expect((await asToken.request('POST', `/api/projects/${projectId}/executions`, { body: { script: 'true', targets: { all: true } } })).status).toBe(403);

    await row.getByTestId('revoke-api-token').click();
    await page.getByTestId('confirm-ok').click();
    await row.waitFor({ state: 'detached' });
    expect((await asToken.request('GET', `/api/projects/${projectId}`)).status).toBe(401);
    expect((await owner.api.request<ApiToken[]>('GET', '/api/tokens')).body).toEqual([]);
  });
});
