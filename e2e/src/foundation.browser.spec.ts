/**
 * FOUNDATION — the first browser test. The issue: sign up, log in, create a
 * project, see it listed, add a member, log out. A real server (embedded
 * SQLite, and MariaDB), the real built dashboard, real Chromium.
 *
 * ┌──────────────────────────────────────────────────────────────────────┐
 * │ UI CONTRACT — adjust here (and in `ui` below) if the dashboard       │
 * │ changes. Elements are found by data-testid OR by role/label, so      │
 * │ either is enough on the web side.                                    │
 * └──────────────────────────────────────────────────────────────────────┘
 * Routes
 *   /login, /signup            unauthenticated pages; any other page while logged out → /login
 *   /projects                  the project list: home after sign-up and sign-in
 *   /projects/:projectId[/…]   one project (may redirect to a tab, e.g. …/machines)
 *   /projects/:projectId/members   its members
 * /login    email "Email" · password "Password" · login-submit button "Sign in"/"Log in" ·
 *           signup-link (to /signup) · form-error (role=alert) when sign-in is refused
 * /signup   name · email "Email" · password "Password" · signup-submit button "Create account"/"Sign up"
 * shell     user-menu button (opens the account menu) → logout item "Sign out"/"Log out"
 * /projects new-project button "New project" → dialog: project-name-input "Name" ·
 *           create-project-submit button "Create project";
 *           project-row per project (data-project-id, data-project-name), a click opens it
 * project   project-name heading · tab-members (link to …/members)
 * members   member-email input · member-role (mat-select or <select>, options owner/operator/viewer) ·
 *           add-member button "Add member" · member-row per member (data-email, data-role)
 */
import fs from 'node:fs';
import type { Locator, Page } from 'playwright-core';
import {
  ApiClient,
  WEB_INDEX,
  describeOrSkip,
  launchBrowser,
  newCredentials,
  requireChromium,
  requireMysql,
  signupUser,
  startServer,
  type TestBrowser,
  type TestServer,
  type TestUser,
} from './harness';

const ui = (page: Page) => {
  const byTestIdOr = (testId: string, alternative: Locator): Locator => page.getByTestId(testId).or(alternative);
  const field = (testId: string, label: string): Locator => byTestIdOr(testId, page.getByLabel(label, { exact: true }));
  const button = (testId: string, name: RegExp): Locator => byTestIdOr(testId, page.getByRole('button', { name }));
  return {
    email: field('email', 'Email'),
    password: field('password', 'Password'),
    name: page.getByTestId('name'),
    loginSubmit: button('login-submit', /^(log in|sign in)$/i),
    signupSubmit: button('signup-submit', /^(sign up|create account)$/i),
    signupLink: page.getByTestId('signup-link'),
    formError: byTestIdOr('form-error', page.getByRole('alert')),
    userMenu: page.getByTestId('user-menu'),
    logout: byTestIdOr('logout', page.getByRole('menuitem', { name: /^(log out|sign out)$/i })),
    newProject: button('new-project', /^new project$/i),
    projectName: field('project-name-input', 'Name'),
    createProject: button('create-project-submit', /^create project$/i),
    projectRows: page.getByTestId('project-row'),
    projectHeading: page.getByTestId('project-name'),
    membersTab: byTestIdOr('tab-members', page.getByRole('link', { name: /^members/i })),
    memberEmail: page.getByTestId('member-email'),
    memberRole: page.getByTestId('member-role'),
    addMember: button('add-member', /^add member$/i),
    memberRows: page.getByTestId('member-row'),
  };
};
type Ui = ReturnType<typeof ui>;

/** Signs out through the account menu (or a visible sign-out button). */
async function logOut($: Ui): Promise<void> {
  if (!(await $.logout.isVisible())) await $.userMenu.click();
  await $.logout.click();
}

const PROJECT_URL = /^\/projects\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(\/[a-z-]+)?$/;
const onPath = (path: RegExp) => (url: URL) => path.test(url.pathname);

/** Runs one step of the story; a failure names the step and where the page was. */
async function step<T>(page: Page, name: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof Error) {
      const message = `step "${name}" (page at ${page.url()}): ${error.message}`;
      error.stack = error.stack?.replace(error.message, message);
      error.message = message;
    }
    throw error;
  }
}

/** Picks `option` in a native <select> or in an ARIA listbox (e.g. mat-select). */
async function choose(page: Page, control: Locator, option: string): Promise<void> {
  if ((await control.evaluate((el) => el.tagName)) === 'SELECT') {
    await control.selectOption(option);
  } else {
    await control.click();
    await page.getByRole('option', { name: option, exact: true }).click();
  }
}

const cases = [
  { database: 'sqlite' as const, skip: null },
  { database: 'mysql' as const, skip: requireMysql() },
];

describe.each(cases)('foundation in the browser ($database)', ({ database, skip }) => {
  describeOrSkip(requireChromium(), skip)('sign up, sign in, create a project, add a member, sign out', () => {
    let server: TestServer;
    let browser: TestBrowser;
    let member: TestUser;
    /** The bearer token of the dashboard's last API call, to prove logout revoked it. */
    let lastDashboardToken: string | undefined;

    beforeAll(async () => {
      if (!fs.existsSync(WEB_INDEX)) throw new Error(`${WEB_INDEX} is missing: build the dashboard (npm run build -w web)`);
      server = await startServer({ database });
      member = await signupUser(server.url, 'member');
      browser = await launchBrowser({ baseURL: server.url });
      browser.page.on('request', (request) => {
        const auth = request.headers()['authorization'];
        if (auth?.startsWith('Bearer ') && new URL(request.url()).pathname.startsWith('/api/')) lastDashboardToken = auth.slice(7);
      });
    });

    afterAll(async () => {
      await browser?.close();
      await server?.dispose();
    });

    it('walks the whole story, and the API agrees with what the page shows', async () => {
      const page = browser.page;
      const $ = ui(page);
      const owner = newCredentials('owner');
      const projectName = `Fleet ${owner.email.slice(6, 16)}`;

      await step(page, 'a logged-out visitor is sent to /login', async () => {
        await page.goto('/');
        await page.waitForURL(onPath(/^\/login$/));
      });

      await step(page, 'sign up', async () => {
        await $.signupLink.click();
        await page.waitForURL(onPath(/^\/signup$/));
        await $.name.fill(owner.name);
        await $.email.fill(owner.email);
        await $.password.fill(owner.password);
        await $.signupSubmit.click();
        await page.waitForURL(onPath(/^\/projects$/));
        await $.userMenu.waitFor();
      });

      await step(page, 'sign out after signing up; the project list is closed to a logged-out visitor', async () => {
        await logOut($);
        await page.waitForURL(onPath(/^\/login$/));
        await page.goto('/projects');
        await page.waitForURL(onPath(/^\/login$/));
      });

      await step(page, 'a wrong password is refused on the page', async () => {
        await $.email.fill(owner.email);
        await $.password.fill(`${owner.password}-wrong`);
        await $.loginSubmit.click();
        await $.formError.waitFor();
        expect(new URL(page.url()).pathname).toBe('/login');
      });

      await step(page, 'sign in', async () => {
        await $.email.fill(owner.email);
        await $.password.fill(owner.password);
        await $.loginSubmit.click();
        await page.waitForURL(onPath(/^\/projects$/));
        await $.userMenu.waitFor();
      });

      const ownerApi = new ApiClient(server.url, (await new ApiClient(server.url).login(owner)).accessToken);

      const projectId = await step(page, 'create a project', async () => {
        await $.newProject.click();
        await $.projectName.fill(projectName);
        await $.createProject.click();
        // The dashboard may open the new project or stay on the list; either is fine.
        await $.projectName.waitFor({ state: 'detached' });
        const projects = await ownerApi.listProjects();
        expect(projects).toEqual([expect.objectContaining({ name: projectName, role: 'owner' })]);
        return projects[0]!.id;
      });

      await step(page, 'see it listed, also after a fresh load of the page', async () => {
        await page.goto('/projects');
        const row = $.projectRows.filter({ hasText: projectName });
        await row.waitFor();
        expect(await $.projectRows.count()).toBe(1);
        expect(await row.getAttribute('data-project-id')).toBe(projectId);
      });

      await step(page, 'open the project and its members', async () => {
        await $.projectRows.filter({ hasText: projectName }).click();
        await page.waitForURL(onPath(PROJECT_URL));
        expect(PROJECT_URL.exec(new URL(page.url()).pathname)?.[1]).toBe(projectId);
        expect((await $.projectHeading.textContent())?.trim()).toBe(projectName);
        await $.membersTab.click();
        await page.waitForURL(onPath(new RegExp(`^/projects/${projectId}/members$`)));
        const self = $.memberRows.filter({ hasText: owner.email });
        await self.waitFor();
        expect(await self.getAttribute('data-role')).toBe('owner');
      });

      await step(page, 'add a member', async () => {
        await $.memberEmail.fill(member.email);
        await choose(page, $.memberRole, 'operator');
        await $.addMember.click();
        const row = $.memberRows.filter({ hasText: member.email });
        await row.waitFor();
        expect(await row.getAttribute('data-role')).toBe('operator');
        expect(await $.memberRows.count()).toBe(2);

        expect(await ownerApi.listMembers(projectId)).toEqual(
          expect.arrayContaining([
            expect.objectContaining({ email: owner.email, role: 'owner' }),
            expect.objectContaining({ email: member.email, role: 'operator' }),
          ]),
        );
        expect(await member.api.listProjects()).toEqual([expect.objectContaining({ id: projectId, role: 'operator' })]);
      });

      await step(page, 'sign out: back to /login, pages closed, the dashboard token revoked', async () => {
        expect(lastDashboardToken).toBeDefined();
        const token = lastDashboardToken!;
        expect((await ownerApi.withToken(token).request('GET', '/api/me')).status).toBe(200);
        await logOut($);
        await page.waitForURL(onPath(/^\/login$/));
        await page.goto(`/projects/${projectId}/members`);
        await page.waitForURL(onPath(/^\/login$/));
        expect((await ownerApi.withToken(token).request('GET', '/api/me')).status).toBe(401);
      });

      expect(browser.consoleLog.filter((line) => line.startsWith('[pageerror]'))).toEqual([]);
      // The app works under the server's content security policy: nothing it needs was blocked, and the
      // critical-CSS script (allowed by its hash) switched the stylesheet on.
      expect((await page.request.get('/')).headers()['content-security-policy']).toContain("script-src 'self'");
      expect(browser.consoleLog.filter((line) => /content security policy/i.test(line))).toEqual([]);
      const medias = await page.locator('link[rel=stylesheet]').evaluateAll((links) => links.map((l) => l.getAttribute('media')));
      expect(medias).not.toContain('print');
    });
  });
});
