import fs from 'node:fs';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { registerCleanup } from './cleanup';
import { makeTempDir, removeDir } from './database';
import { artifactDir, onTestFailure } from './failures';
import { requirement } from './requirements';

/** Debian's chromium; never a downloaded browser. */
export function chromiumPath(): string {
  return process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
}

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
  '--disable-quic',
];

/** Null when Chromium is there; otherwise why not. */
export function probeChromium(): string | null {
  const exe = chromiumPath();
  try {
    fs.accessSync(exe, fs.constants.X_OK);
    return null;
  } catch {
    return `${exe} is not an executable (apt-get install -y chromium, or set CHROMIUM_PATH)`;
  }
}

/** The skip rule for Chromium: null when present; throws under CI=true; locally prints and returns the reason. */
export function requireChromium(): string | null {
  return requirement('Chromium', probeChromium());
}

export interface TestBrowser {
  context: BrowserContext;
  /** The first page. */
  page: Page;
  userDataDir: string;
  /** Console messages and page errors of every page, for failure reports. */
  consoleLog: string[];
  /** Saves a PNG and the HTML of every open page into `dir`; returns the files written. */
  capture(dir: string, prefix?: string): Promise<string[]>;
  close(): Promise<void>;
}

const openBrowsers = new Set<TestBrowser>();

/**
 * Launches headless Chromium with a fresh user data dir (removed on close)
 * and one page. `baseURL` makes `page.goto('/x')` relative to the server.
 * When a test fails while it is open, every page is saved to e2e/.artifacts/.
 */
export async function launchBrowser(options: { baseURL?: string; timeoutMs?: number } = {}): Promise<TestBrowser> {
  const userDataDir = await makeTempDir('kapitan-e2e-chromium-');
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: chromiumPath(),
      headless: true,
      args: CHROMIUM_ARGS,
      baseURL: options.baseURL,
      viewport: { width: 1280, height: 800 },
      timeout: options.timeoutMs ?? 30_000,
    });
  } catch (error) {
    await removeDir(userDataDir);
    throw error;
  }
  const timeout = options.timeoutMs ?? 15_000;
  context.setDefaultTimeout(timeout);
  context.setDefaultNavigationTimeout(timeout);
  const consoleLog: string[] = [];
  const watch = (page: Page): void => {
    page.on('console', (m) => consoleLog.push(`[${m.type()}] ${page.url()}: ${m.text()}`));
    page.on('pageerror', (e) => consoleLog.push(`[pageerror] ${page.url()}: ${e.stack ?? e.message}`));
    // Chromium aborts a navigation in flight when a network interface of the host appears or goes
    // (Docker adds a veth for every container the agent tests start): the page is loaded again, a
    // few times at most. Any other navigation failure fails the test as it is.
    const goto = page.goto.bind(page);
    page.goto = async (url, opts) => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await goto(url, opts);
        } catch (error) {
          if (attempt >= 3 || !String(error).includes('net::ERR_NETWORK_CHANGED')) throw error;
          consoleLog.push(`[harness] ${url}: net::ERR_NETWORK_CHANGED (the host's interfaces changed), loading it again`);
        }
      }
    };
  };
  context.pages().forEach(watch);
  context.on('page', watch);
  const page = context.pages()[0] ?? (await context.newPage());

  let closed = false;
  const browser: TestBrowser = {
    context,
    page,
    userDataDir,
    consoleLog,
    capture: async (dir, prefix = 'page') => {
      const files: string[] = [];
      const pages = context.pages();
      for (const [i, p] of pages.entries()) {
        const base = path.join(dir, pages.length > 1 ? `${prefix}-${i + 1}` : prefix);
        await p.screenshot({ path: `${base}.png`, fullPage: true, timeout: 5_000 }).then(
          () => files.push(`${base}.png`),
          () => undefined,
        );
        await p.content().then(
          async (html) => {
            await fs.promises.writeFile(`${base}.html`, `<!-- ${p.url()} -->\n${html}`);
            files.push(`${base}.html`);
          },
          () => undefined,
        );
      }
      await fs.promises.writeFile(path.join(dir, `${prefix}-console.log`), consoleLog.join('\n'));
      files.push(path.join(dir, `${prefix}-console.log`));
      return files;
    },
    close: async () => {
      if (closed) return;
      closed = true;
      openBrowsers.delete(browser);
      unregister();
      await context.close().catch(() => undefined);
      await removeDir(userDataDir);
    },
  };
  openBrowsers.add(browser);
  const unregister = registerCleanup(`chromium ${userDataDir}`, browser.close);
  return browser;
}

onTestFailure(async ({ testName }) => {
  if (openBrowsers.size === 0) return;
  const dir = await artifactDir(testName);
  let n = 0;
  for (const browser of openBrowsers) {
    const files = await browser.capture(dir, openBrowsers.size > 1 ? `browser-${++n}` : 'browser');
    process.stderr.write(`[e2e] "${testName}" failed; browser saved:\n  ${files.join('\n  ')}\n`);
  }
});

/** Logs in through the dashboard's own form, as a person would, and waits for the projects page. */
export async function logIn(page: Page, user: { email: string; password: string }): Promise<void> {
  await page.goto('/login');
  await page.getByTestId('email').fill(user.email);
  await page.getByTestId('password').fill(user.password);
  await page.getByTestId('login-submit').click();
  await page.waitForURL(/\/projects/);
}
