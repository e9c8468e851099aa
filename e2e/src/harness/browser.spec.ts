// Harness self-test: Debian's Chromium starts headless through playwright-core
// with the harness's flags and a fresh profile, and loads a page.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { launchBrowser, requireChromium } from './browser';
import { describeOrSkip } from './requirements';

describeOrSkip(requireChromium())('launchBrowser (real Chromium)', () => {
  it('loads a data: URL, captures it, and removes its profile on close', async () => {
    const browser = await launchBrowser();
    const { page } = browser;
    await page.goto(
      'data:text/html,' +
        encodeURIComponent('<title>kapitan</title><label>Email <input name="email"></label><button data-testid="submit">Go</button><script>console.log("hello")</script>'),
    );
    expect(await page.title()).toBe('kapitan');
    await page.getByLabel('Email').fill('a@b.c');
    expect(await page.getByLabel('Email').inputValue()).toBe('a@b.c');
    await expect(page.getByTestId('submit').textContent()).resolves.toBe('Go');
    expect(browser.consoleLog).toEqual(expect.arrayContaining([expect.stringContaining('hello')]));

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kapitan-e2e-capture-'));
    const files = await browser.capture(dir);
    expect(files.map((f) => path.basename(f)).sort()).toEqual(['page-console.log', 'page.html', 'page.png']);
    expect(fs.readFileSync(path.join(dir, 'page.png')).subarray(1, 4).toString()).toBe('PNG');
    fs.rmSync(dir, { recursive: true });

    await browser.close();
    expect(fs.existsSync(browser.userDataDir)).toBe(false);
  });
});
