/**
 * Project secrets in the dashboard, real server (embedded SQLite), real
 * Chromium: an owner adds, rotates and deletes a secret; the value is typed
 * into a password field and never comes back — not in the page, not in any
 * API response the dashboard receives; a viewer sees the names only.
 *
 * UI contract: tab-secrets (project tab) · new-secret button · secret-name,
 * secret-value (password input), secret-submit in the dialog · secret-row per
 * secret (data-name) with rotate-secret and delete-secret buttons (owners) ·
 * the delete confirmation asks to type the name (confirm-text, confirm-ok).
 */
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Page } from 'playwright-core';
import type { Secret } from '@kapitan/shared';
import {
  logIn,
  WEB_INDEX,
  describeOrSkip,
  launchBrowser,
  requireChromium,
  signupUser,
  startServer,
  waitFor,
  type TestBrowser,
  type TestServer,
  type TestUser,
} from './harness';

/** Every /api/ response body the page receives, to prove none carries a value. */
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

describeOrSkip(requireChromium())('secrets in the dashboard (SQLite, Chromium)', () => {
  let server: TestServer;
  let owner: TestUser;
  let viewer: TestUser;
  let projectId: string;
  let ownerBrowser: TestBrowser | undefined;
  let viewerBrowser: TestBrowser | undefined;

  beforeAll(async () => {
    if (!fs.existsSync(WEB_INDEX)) throw new Error(`${WEB_INDEX} is missing: build the dashboard (npm run build -w web)`);
    server = await startServer({ database: 'sqlite' });
    owner = await signupUser(server.url, 'secrets-owner');
    viewer = await signupUser(server.url, 'secrets-viewer');
    projectId = (await owner.api.createProject({ name: 'secrets' })).id;
    await owner.api.addMember(projectId, { email: viewer.email, role: 'viewer' });
  });
  afterAll(async () => {
    await ownerBrowser?.close();
    await viewerBrowser?.close();
    await server?.dispose();
  });

  const listSecrets = async (): Promise<Secret[]> => (await owner.api.request<Secret[]>('GET', `/api/projects/${projectId}/secrets`)).body;

  test('an owner adds, rotates and deletes a secret; its value never comes back to the page', async () => {
    ownerBrowser = await launchBrowser({ baseURL: server.url });
    const { page } = ownerBrowser;
    const responses = recordApiResponses(page);
    const first = `first-${randomBytes(8).toString('hex')}`;
    const second = `second-${randomBytes(8).toString('hex')}`;
    await logIn(page, owner);
    await page.goto(`/projects/${projectId}`);
    await page.getByTestId('tab-secrets').click();
    await page.waitForURL(/\/secrets$/);

    await page.getByTestId('new-secret').click();
    await page.getByTestId('secret-name').fill('DB_PASSWORD');
    const valueField = page.getByTestId('secret-value');
    expect(await valueField.getAttribute('type')).toBe('password');
    await valueField.fill(first);
    await page.getByTestId('secret-submit').click();
    await page.locator('[data-testid=secret-row][data-name=DB_PASSWORD]').waitFor();
    expect((await listSecrets()).map((s) => s.name)).toEqual(['DB_PASSWORD']);
    const created = (await listSecrets())[0];

    // A name that exists: the dialog says so and nothing is added.
    await page.getByTestId('new-secret').click();
    await page.getByTestId('secret-name').fill('DB_PASSWORD');
    await page.getByTestId('secret-value').fill('another value');
    await page.getByTestId('secret-submit').click();
    await page.getByRole('alert').filter({ hasText: /exists/ }).waitFor();
    await page.getByRole('button', { name: 'Cancel' }).click();

    await page.locator('[data-testid=secret-row][data-name=DB_PASSWORD] [data-testid=rotate-secret]').click();
    await page.getByTestId('secret-value').fill(second);
    await page.getByTestId('secret-submit').click();
    await waitFor(async () => ((await listSecrets())[0].updatedAt !== created.updatedAt ? true : null), {
      timeoutMs: 10_000,
      message: 'the rotation to be stored',
    });

    await page.locator('[data-testid=secret-row][data-name=DB_PASSWORD] [data-testid=delete-secret]').click();
    await page.getByTestId('confirm-text').fill('DB_PASSWORD');
    await page.getByTestId('confirm-ok').click();
    await page.locator('[data-testid=secret-row]').first().waitFor({ state: 'detached' });
    expect(await listSecrets()).toEqual([]);

    const html = await page.content();
    const seen = responses.join('\n');
    for (const v of [first, second]) {
      expect(html).not.toContain(v);
      expect(seen).not.toContain(v);
    }
    expect(responses.length).toBeGreaterThan(3);
  });

  test('a viewer sees the names, and no way to add, rotate or delete', async () => {
    const res = await owner.api.request('POST', `/api/projects/${projectId}/secrets`, { body: { name: 'API_TOKEN', value: 'viewer-cannot-see-this' } });
    expect(res.status).toBe(201);
    viewerBrowser = await launchBrowser({ baseURL: server.url });
    const { page } = viewerBrowser;
    const responses = recordApiResponses(page);
    await logIn(page, viewer);
    await page.goto(`/projects/${projectId}/secrets`);
    await page.locator('[data-testid=secret-row][data-name=API_TOKEN]').waitFor();
    expect(await page.getByTestId('new-secret').count()).toBe(0);
    expect(await page.getByTestId('rotate-secret').count()).toBe(0);
    expect(await page.getByTestId('delete-secret').count()).toBe(0);
    expect(await page.content()).not.toContain('viewer-cannot-see-this');
    expect(responses.join('\n')).not.toContain('viewer-cannot-see-this');
  });
});
