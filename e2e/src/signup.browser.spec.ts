// Sign-up under the admin's control, in a real Chromium against a real server
// with the default mode (open until the first account, then by invitation):
// the first account becomes the admin; a stranger's sign-up page says it is
// closed and the server refuses; the admin makes an invitation link on the
// Admin page, the invited person opens it and picks a password; the link
// then works never again; a revoked link is refused.
import fs from 'node:fs';
import type { Page } from 'playwright-core';
import { ApiClient, WEB_INDEX, describeOrSkip, launchBrowser, newCredentials, requireChromium, startServer, type TestBrowser, type TestServer } from './harness';

const onPath = (path: RegExp) => (url: URL) => path.test(url.pathname);

describeOrSkip(requireChromium())('sign-up in the browser (default mode, sqlite)', () => {
  let server: TestServer;
  let browser: TestBrowser;

  beforeAll(async () => {
    if (!fs.existsSync(WEB_INDEX)) throw new Error(`${WEB_INDEX} is missing: build the dashboard (npm run build -w web)`);
    server = await startServer({ env: { KAPITAN_SIGNUP: undefined } });
    browser = await launchBrowser({ baseURL: server.url });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.dispose();
  });

  const fillSignup = async (page: Page, creds: { email: string; password: string }) => {
    await page.getByTestId('email').fill(creds.email);
    await page.getByTestId('password').fill(creds.password);
    await page.getByTestId('signup-submit').click();
  };

  it('first account is the admin; then sign-up is by invitation; an invitation link works once', async () => {
    const page = browser.page;
    const admin = newCredentials('admin');

    // The first account: the page does not say "closed", and the account is the admin.
    await page.goto('/signup');
    await fillSignup(page, admin);
    await page.waitForURL(onPath(/^\/projects$/));
    expect((await new ApiClient(server.url).login(admin)).user.isAdmin).toBe(true);

    // The admin page: create an invitation and read its link (shown once).
    await page.getByTestId('nav-admin').click();
    await page.waitForURL(onPath(/^\/admin$/));
    expect(await page.getByTestId('signup-mode').getAttribute('data-mode')).toBe('invite');
    await page.getByTestId('create-invitation').click();
    const link = (await page.getByTestId('invitation-link').textContent())!.trim();
    expect(link).toMatch(new RegExp(`^${server.url}/signup\\?invite=kpi_`));
    await page.getByTestId('invitation-row').first().waitFor();
    // A second one, revoked at once.
    await page.getByTestId('create-invitation').click();
    // The link shown is replaced once the second invitation's answer arrives; read it only then.
    const secondLink = page.getByTestId('invitation-link').filter({ hasNotText: link });
    await secondLink.waitFor();
    const revokedLink = (await secondLink.textContent())!.trim();
    expect(revokedLink).toMatch(new RegExp(`^${server.url}/signup\\?invite=kpi_`));
    await page.getByTestId('invitation-row').nth(1).waitFor();
    await page.getByTestId('revoke-invitation').first().click();
    await page.locator('[data-testid="invitation-row"] [data-status="revoked"]').waitFor();

    // A stranger in a fresh (logged-out) page: the sign-up page says it is closed, and the server refuses.
    const stranger = await launchBrowser({ baseURL: server.url });
    try {
      const other = stranger.page;
      await other.goto('/signup');
      await other.getByTestId('signup-closed').waitFor();
      await fillSignup(other, newCredentials('stranger'));
      await other.getByTestId('form-error').filter({ hasText: /invitation/i }).waitFor();
      expect(new URL(other.url()).pathname).toBe('/signup');

      // The revoked link is refused.
      await other.goto(revokedLink);
      await other.getByTestId('signup-invited').waitFor();
      await fillSignup(other, newCredentials('revoked'));
      await other.getByTestId('form-error').filter({ hasText: /not valid/i }).waitFor();

      // The invited person opens the link and picks a password.
      const invited = newCredentials('invited');
      await other.goto(link);
      await other.getByTestId('signup-invited').waitFor();
      await fillSignup(other, invited);
      await other.waitForURL(onPath(/^\/projects$/));
      expect((await new ApiClient(server.url).login(invited)).user.isAdmin).toBe(false);
    } finally {
      await stranger.close();
    }

    // The link works never again.
    const again = await new ApiClient(server.url).request('POST', '/api/auth/signup', {
      body: { ...newCredentials('again'), invitation: new URL(link).searchParams.get('invite') },
      token: null,
    });
    expect(again.status).toBe(403);
    expect(browser.consoleLog.filter((l) => l.startsWith('[pageerror]') || /content security policy/i.test(l))).toEqual([]);
  });
});
