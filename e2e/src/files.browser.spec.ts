/**
 * The Files tab in a real Chromium against a real server (embedded SQLite):
 * drop a file to upload it, watch a real progress bar (the upload sent through
 * a relay with a 4 MB/s uplink so progress is visible between 0 and 100 %),
 * a large file goes up in resumable chunks, sizes and sha256 are listed, an
 * operator deletes; a viewer sees the list and no way to change it.
 *
 * UI contract: tab-files · file-dropzone (drop target) · file-input (the
 * hidden <input type=file>) · file-kind toggles (data-kind) · upload-progress
 * per transfer (data-name) with upload-percent · file-row (data-name) with
 * file-size, file-sha256, download-file, delete-file · confirm-ok.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Transform } from 'node:stream';
import type { Page } from 'playwright-core';
import type { StoredFile } from '@kapitan/shared';
import { WEB_INDEX, describeOrSkip, launchBrowser, logIn, registerCleanup, requireChromium, signupUser, startServer, type TestBrowser, type TestServer, type TestUser } from './harness';

/** A file on disk to pick: a local browser reads it itself, instead of receiving megabytes over the protocol. */
function tempFile(name: string, bytes: Buffer): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kapitan-pick-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, bytes);
  registerCleanup(`picked ${name}`, () => fs.rmSync(dir, { recursive: true, force: true }));
  return file;
}

/**
 * A TCP relay to the server that passes at most `bytesPerSecond` from the
 * browser to the server (answers go at full speed), like a slow uplink.
 */
async function slowLink(port: number, bytesPerSecond: number): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const relay = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    sockets.add(client).add(upstream);
    const throttle = new Transform({
      transform(chunk: Buffer, _enc, done) {
        setTimeout(() => done(null, chunk), (chunk.length / bytesPerSecond) * 1000);
      },
    });
    client.pipe(throttle).pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(relay.address() as AddressInfo).port}`,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => relay.close(r));
    },
  };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describeOrSkip(requireChromium())('files in the dashboard (SQLite, Chromium)', () => {
  let server: TestServer;
  let owner: TestUser;
  let viewer: TestUser;
  let projectId: string;
  let browser: TestBrowser | undefined;
  let viewerBrowser: TestBrowser | undefined;

  beforeAll(async () => {
    if (!fs.existsSync(WEB_INDEX)) throw new Error(`${WEB_INDEX} is missing: build the dashboard (npm run build -w web)`);
    server = await startServer({ database: 'sqlite' });
    owner = await signupUser(server.url, 'files-owner');
    viewer = await signupUser(server.url, 'files-viewer');
    projectId = (await owner.api.createProject({ name: 'files' })).id;
    await owner.api.addMember(projectId, { email: viewer.email, role: 'viewer' });
  });
  afterAll(async () => {
    await browser?.close();
    await viewerBrowser?.close();
    await server?.dispose();
  });

  const listFiles = async (): Promise<StoredFile[]> => (await owner.api.request<StoredFile[]>('GET', `/api/projects/${projectId}/files`)).body;
  const row = (page: Page, name: string) => page.locator(`[data-testid=file-row][data-name="${name}"]`);

  test('an operator drops a script, sees it listed with its size and sha256, and deletes it', async () => {
    browser = await launchBrowser({ baseURL: server.url });
    const { page } = browser;
    await logIn(page, owner);
    await page.goto(`/projects/${projectId}`);
    await page.getByTestId('tab-files').click();
    await page.waitForURL(/\/files$/);

    await page.locator('[data-testid=file-kind] [data-kind=script] button').click();
    const content = '#!/bin/sh\necho "hello from a dropped file"\n';
    const dataTransfer = await page.evaluateHandle((text) => {
      const dt = new (globalThis as unknown as { DataTransfer: new () => { items: { add(f: unknown): void } } }).DataTransfer();
      const FileCtor = (globalThis as unknown as { File: new (parts: string[], name: string, o: object) => unknown }).File;
      dt.items.add(new FileCtor([text], 'hello.sh', { type: 'text/x-sh' }));
      return dt;
    }, content);
    await page.dispatchEvent('[data-testid=file-dropzone]', 'drop', { dataTransfer });
    await row(page, 'hello.sh').waitFor();

    const [stored] = await listFiles();
    expect(stored).toMatchObject({ name: 'hello.sh', kind: 'script', size: Buffer.byteLength(content), sha256: sha(Buffer.from(content)) });
    expect(await row(page, 'hello.sh').getByTestId('file-sha256').textContent()).toContain(stored.sha256);
    expect(await row(page, 'hello.sh').getByTestId('file-size').getAttribute('title')).toBe(`${stored.size} bytes`);

    await row(page, 'hello.sh').getByTestId('delete-file').click();
    await page.getByTestId('confirm-ok').click();
    await row(page, 'hello.sh').waitFor({ state: 'detached' });
    expect(await listFiles()).toEqual([]);
  });

  test('the progress bar moves with the bytes sent (through a link that carries 4 MB/s upstream)', async () => {
    // Socket buffers on loopback swallow megabytes at once, so a small file would jump from 0 to 100 %; this one
    // is sent in chunks, each answered only once the server has it, so the bar must stop in between.
    const link = await slowLink(server.port, 4 * 1024 * 1024);
    const slow = await launchBrowser({ baseURL: link.url });
    try {
      const { page } = slow;
      await logIn(page, owner);
      await page.goto(`/projects/${projectId}/files`);
      await page.locator('[data-testid=file-kind] [data-kind=file] button').click();
      const bytes = randomBytes(34 * 1024 * 1024);
      await page.getByTestId('file-input').setInputFiles(tempFile('slow.bin', bytes));
      const percent = page.locator('[data-testid=upload-progress][data-name="slow.bin"] [data-testid=upload-percent]');
      // Strictly between the start and the end: a bar that jumped from 0 to done would never show this.
      await percent.filter({ hasText: /^\s*([1-9]|[1-9]\d) %/ }).waitFor({ timeout: 30_000 });
      await row(page, 'slow.bin').waitFor({ timeout: 90_000 });
      expect((await listFiles()).find((f) => f.name === 'slow.bin')).toMatchObject({ size: bytes.length, sha256: sha(bytes) });
    } finally {
      await slow.close();
      await link.close();
    }
  }, 180_000);

  test('a file over 32 MiB goes up in resumable chunks and arrives whole', async () => {
    const { page } = browser!;
    const bytes = randomBytes(40 * 1024 * 1024);
    const chunkRequests: string[] = [];
    page.on('request', (r) => {
      if (r.method() === 'PUT' && /\/api\/uploads\//.test(r.url())) chunkRequests.push(r.url());
    });
    await page.locator('[data-testid=file-kind] [data-kind=file] button').click();
    await page.getByTestId('file-input').setInputFiles(tempFile('large.bin', bytes));
    await row(page, 'large.bin').waitFor({ timeout: 120_000 });
    expect((await listFiles()).find((f) => f.name === 'large.bin')).toMatchObject({ size: bytes.length, sha256: sha(bytes) });
    expect(chunkRequests.length).toBe(5); // 8 MiB each
  });

  test('a file over its kind\'s limit is refused in the page with the server\'s reason; nothing is stored', async () => {
    const { page } = browser!;
    await page.locator('[data-testid=file-kind] [data-kind=script] button').click();
    await page.getByTestId('file-input').setInputFiles(tempFile('huge.sh', randomBytes(2 * 1024 * 1024)));
    await page.locator('[data-testid=upload-progress][data-name="huge.sh"] [role=alert]').filter({ hasText: /larger than/ }).waitFor();
    expect((await listFiles()).some((f) => f.name === 'huge.sh')).toBe(false);
  });

  test('a viewer sees the files, and no way to upload or delete', async () => {
    viewerBrowser = await launchBrowser({ baseURL: server.url });
    const { page } = viewerBrowser;
    await logIn(page, viewer);
    await page.goto(`/projects/${projectId}/files`);
    await row(page, 'slow.bin').waitFor();
    expect(await page.getByTestId('file-dropzone').count()).toBe(0);
    expect(await page.getByTestId('delete-file').count()).toBe(0);
    expect(await page.getByTestId('download-file').count()).toBeGreaterThan(0);
  });
});
