/**
 * Schedules in a real Chromium against a real server (embedded SQLite): an
 * operator creates a schedule on the page, reads its cron expression back
 * in words with the next five fire times in both zones, and sees it fire
 * in its history, linking to the execution it started.
 *
 * UI contract: tab-schedules · new-schedule · schedule-form with
 * schedule-name, schedule-cron, schedule-timezone, cron-description,
 * next-fire-schedule-zone / next-fire-viewer-zone, schedule-script,
 * schedule-target-mode, schedule-submit · on the schedule's page
 * schedule-next-fire, history-refresh, occurrence-row (data-status),
 * occurrence-execution · on the list schedule-last-status.
 */
import fs from 'node:fs';
import { WEB_INDEX, describeOrSkip, launchBrowser, logIn, requireChromium, startServer, waitFor, type TestBrowser, type TestServer } from './harness';
import { enrolRaw, setupProject, type TestProject } from './agents/fixtures';

describeOrSkip(requireChromium())('schedules in the dashboard (SQLite, Chromium)', () => {
  let server: TestServer;
  let p: TestProject;
  let browser: TestBrowser | undefined;

  beforeAll(async () => {
    if (!fs.existsSync(WEB_INDEX)) throw new Error(`${WEB_INDEX} is missing: build the dashboard (npm run build -w web)`);
    server = await startServer({ database: 'sqlite' });
    p = await setupProject(server.url, 'schedules-ui');
    await enrolRaw(server.url, p);
  });
  afterAll(async () => {
    await browser?.close();
    await server?.dispose();
  });

  test('create a schedule on the page, read it in words with its next fire times, see it fire and link to its execution', async () => {
    browser = await launchBrowser({ baseURL: server.url });
    const { page } = browser;
    await logIn(page, p.owner);
    await page.goto(`/projects/${p.projectId}`);
    await page.getByTestId('tab-schedules').click();
    await page.getByTestId('new-schedule').click();
    await page.getByTestId('schedule-name').fill('every two seconds');
    await page.getByTestId('schedule-cron').fill('*/2 * * * * *');
    await page.getByTestId('schedule-timezone').fill('Asia/Kolkata');
    await page.getByTestId('cron-description').filter({ hasText: /every 2 seconds/i }).waitFor();
    await page.getByTestId('next-fire-schedule-zone').nth(4).waitFor();
    expect(await page.getByTestId('next-fire-schedule-zone').count()).toBe(5);
    expect(await page.getByTestId('next-fire-viewer-zone').count()).toBe(5);
    // Kolkata is UTC+05:30: the zone shows in the schedule's column.
    expect(await page.getByTestId('next-fire-schedule-zone').first().textContent()).toMatch(/GMT\+5:30|IST/);

    // A cron that fires too often is refused before anything is sent.
    await page.getByTestId('schedule-cron').fill('* * * * * *');
    await page.getByTestId('preview-problem').filter({ hasText: /more often/ }).waitFor();
    await page.getByTestId('schedule-cron').fill('*/2 * * * * *');

    await page.getByTestId('schedule-script').fill('#!/bin/sh\necho scheduled\n');
    await page.locator('[data-testid=schedule-target-mode] mat-button-toggle[value=all] button, [data-testid=schedule-target-mode] button').filter({ hasText: 'All' }).click();
    await page.getByTestId('schedule-submit').click();
    await page.waitForURL(/\/schedules\/[0-9a-f-]{36}$/);
    await page.getByTestId('schedule-next-fire').nth(4).waitFor();

    await waitFor(
      async () => {
        await page.getByTestId('history-refresh').click();
        return (await page.getByTestId('occurrence-row').count()) > 0;
      },
      { timeoutMs: 20_000, intervalMs: 500, message: 'an occurrence in the history' },
    );
    const link = page.getByTestId('occurrence-execution').first();
    await link.waitFor();
    const href = await link.getAttribute('href');
    expect(href).toMatch(new RegExp(`/projects/${p.projectId}/executions/[0-9a-f-]{36}$`));
    const executionId = href!.split('/').pop()!;
    const e = await p.api.getExecution(executionId);
    expect(e.script).toBe('#!/bin/sh\necho scheduled\n');

    // The list shows how the last one went.
    await page.goto(`/projects/${p.projectId}/schedules`);
    await page.getByTestId('schedule-last-status').first().waitFor();
  });
});
