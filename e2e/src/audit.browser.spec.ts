/**
 * The audit log in the dashboard, real server (embedded SQLite), real
 * Chromium: an owner sees what was done in the project (by whom, from
 * where), narrows it with the filters, and exports it as JSON lines; a
 * viewer has no Audit tab and the page refuses them.
 *
 * UI contract: tab-audit (project tab, owners) · audit-filter-action
 * (mat-select), audit-filter-actor, audit-filter-machine, audit-filter-from,
 * audit-filter-to, audit-apply, audit-reset · audit-row per event
 * (data-action) with audit-action and audit-actor cells · audit-more ·
 * audit-export (downloads the NDJSON).
 */
import fs from 'node:fs';
import { AuditEventSchema } from '@kapitan/shared';
import { logIn, WEB_INDEX, describeOrSkip, launchBrowser, requireChromium, signupUser, startServer, waitFor, type TestBrowser, type TestServer, type TestUser } from './harness';

describeOrSkip(requireChromium())('audit log in the dashboard (SQLite, Chromium)', () => {
  let server: TestServer;
  let owner: TestUser;
  let viewer: TestUser;
  let projectId: string;
  let ownerBrowser: TestBrowser | undefined;
  let viewerBrowser: TestBrowser | undefined;

  beforeAll(async () => {
    if (!fs.existsSync(WEB_INDEX)) throw new Error(`${WEB_INDEX} is missing: build the dashboard (npm run build -w web)`);
    server = await startServer({ database: 'sqlite' });
    owner = await signupUser(server.url, 'audit-owner');
    viewer = await signupUser(server.url, 'audit-viewer');
    projectId = (await owner.api.createProject({ name: 'audited' })).id;
    await owner.api.addMember(projectId, { email: viewer.email, role: 'viewer' });
    for (const name of ['ONE', 'TWO']) {
      expect((await owner.api.request('POST', `/api/projects/${projectId}/secrets`, { body: { name, value: `value-of-${name}` } })).status).toBe(201);
    }
    expect((await owner.api.request('PATCH', `/api/projects/${projectId}`, { body: { description: 'now audited' } })).status).toBe(200);
  });
  afterAll(async () => {
    await ownerBrowser?.close();
    await viewerBrowser?.close();
    await server?.dispose();
  });

  const shownActions = async (browser: TestBrowser): Promise<string[]> => browser.page.locator('[data-testid=audit-row]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-action') ?? ''));

  test('an owner reads, filters and exports the log', async () => {
    ownerBrowser = await launchBrowser({ baseURL: server.url });
    const { page } = ownerBrowser;
    await logIn(page, owner);
    await page.goto(`/projects/${projectId}`);
    await page.getByTestId('tab-audit').click();
    await page.waitForURL(/\/audit$/);
    await page.locator('[data-testid=audit-row][data-action="project.create"]').waitFor();
    expect(await shownActions(ownerBrowser)).toEqual(['project.update', 'secret.create', 'secret.create', 'member.add', 'project.create']);
    expect(await page.locator('[data-testid=audit-row]').first().getByTestId('audit-actor').textContent()).toContain(owner.email);
    expect(await page.content()).not.toContain('value-of-ONE');

    await page.getByTestId('audit-filter-action').click();
    await page.getByRole('option', { name: 'secret.create', exact: true }).click();
    await page.getByTestId('audit-apply').click();
    await waitFor(async () => ((await shownActions(ownerBrowser!)).join() === 'secret.create,secret.create' ? true : null), {
      timeoutMs: 10_000,
      message: 'only the secret.create events to be shown',
    });

    // The export follows the filter that is applied.
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('audit-export').click()]);
    const file = await download.path();
    const lines = fs.readFileSync(file, 'utf8').trimEnd().split('\n').map((l) => AuditEventSchema.parse(JSON.parse(l)));
    expect(lines.map((e) => [e.action, e.details.name])).toEqual([
      ['secret.create', 'TWO'],
      ['secret.create', 'ONE'],
    ]);

    // A bad actor id is refused in the form, before any request.
    await page.getByTestId('audit-filter-actor').fill('not-an-id');
    expect(await page.getByTestId('audit-apply').isDisabled()).toBe(true);
    await page.getByTestId('audit-reset').click();
    await waitFor(async () => ((await shownActions(ownerBrowser!)).length === 5 ? true : null), { timeoutMs: 10_000, message: 'every event again after clearing' });
  });

  test('a viewer has no Audit tab, and the page answers 403', async () => {
    viewerBrowser = await launchBrowser({ baseURL: server.url });
    const { page } = viewerBrowser;
    await logIn(page, viewer);
    await page.goto(`/projects/${projectId}/secrets`);
    await page.getByTestId('tab-secrets').waitFor();
    expect(await page.getByTestId('tab-audit').count()).toBe(0);
    await page.goto(`/projects/${projectId}/audit`);
    await page.getByText('Could not load the audit log').waitFor();
    await page.getByText(/needs the owner role/).waitFor();
    expect(await page.getByTestId('audit-row').count()).toBe(0);
  });
});
