/**
 * Installing the agent from the dashboard, real server with HTTPS on, real
 * Chromium: the owner sees the server's fingerprints, downloads a bundle (a
 * zip holding the installer and a token listed as the bundle's), makes a
 * one-line command to copy (its token listed as the one-line install's),
 * and sees the machine appear when that token enrols. An operator sees the
 * token list but neither way to mint a bundle.
 *
 * UI contract: install-panel · bundle-download · install-link-create ·
 * install-command, install-command-copy · tls-fingerprint, tls-pin ·
 * token-row (data-token-id) with token-purpose · machine-row (data-machine-id).
 */
import { type EnrolResponse, type InstanceTls, type MachineFacts } from '@kapitan/shared';
import fs from 'node:fs';
import path from 'node:path';
import yauzl from 'yauzl';
import {
  WEB_INDEX,
  describeOrSkip,
  freePort,
  launchBrowser,
  logIn,
  makeTempDir,
  removeDir,
  requireChromium,
  signupUser,
  startServer,
  type TestBrowser,
  type TestServer,
  type TestUser,
} from './harness';

const FACTS: MachineFacts = {
  hostname: 'one-line-host',
  os: 'Debian GNU/Linux 12',
  platform: 'linux',
  kernel: '6.1.0',
  arch: 'x64',
  cpus: 2,
  memoryBytes: 1024 ** 3,
  agentVersion: 'e2e',
  dockerAvailable: false,
};

function zipEntries(file: string): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err ?? new Error('no zip'));
      const out = new Map<string, Buffer>();
      zip.on('entry', (e: yauzl.Entry) => {
        // Only the small text entries are read; the agents are 100 MiB.
        if (!/\.(json|sh|txt)$|enrolment-token$/.test(e.fileName)) {
          out.set(e.fileName, Buffer.alloc(0));
          return zip.readEntry();
        }
        zip.openReadStream(e, (err2, stream) => {
          if (err2 || !stream) return reject(err2 ?? new Error('no stream'));
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => {
            out.set(e.fileName, Buffer.concat(chunks));
            zip.readEntry();
          });
        });
      });
      zip.on('end', () => resolve(out));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}

describeOrSkip(requireChromium())('installing the agent from the dashboard (SQLite, HTTPS, Chromium)', () => {
  let server: TestServer;
  let owner: TestUser;
  let operator: TestUser;
  let projectId: string;
  let publicUrl: string;
  let browser: TestBrowser | undefined;
  let work: string;

  beforeAll(async () => {
    if (!fs.existsSync(WEB_INDEX)) throw new Error(`${WEB_INDEX} is missing: build the dashboard (npm run build -w web)`);
    const httpsPort = await freePort();
    publicUrl = `https://127.0.0.1:${httpsPort}`;
    server = await startServer({ database: 'sqlite', env: { HTTPS_PORT: String(httpsPort), KAPITAN_PUBLIC_URL: publicUrl } });
    owner = await signupUser(server.url, 'bundle-owner');
    operator = await signupUser(server.url, 'bundle-operator');
    projectId = (await owner.api.createProject({ name: 'bundles' })).id;
    expect((await owner.api.request('POST', `/api/projects/${projectId}/members`, { body: { email: operator.email, role: 'operator' } })).status).toBe(201);
    work = await makeTempDir('kapitan-e2e-bundle-browser-');
  });
  afterAll(async () => {
    await browser?.close();
    await server?.dispose();
    if (work) await removeDir(work);
  });

  test('fingerprints shown; the bundle downloads with its token listed; the one-line command shows, and its machine appears once enrolled', async () => {
    browser = await launchBrowser({ baseURL: server.url });
    const { page } = browser;
    await logIn(page, owner);
    await page.goto(`/projects/${projectId}/machines`);
    await page.getByTestId('install-panel').waitFor();

    const tls = (await owner.api.request<InstanceTls>('GET', '/api/instance/tls')).body;
    expect((await page.getByTestId('tls-fingerprint').textContent())?.trim()).toBe(tls.serving!.fingerprint256);
    expect((await page.getByTestId('tls-pin').allTextContents()).map((s) => s.trim())).toEqual(tls.pins.map((p) => p.spkiSha256));

    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 180_000 }), page.getByTestId('bundle-download').click()]);
    expect(download.suggestedFilename()).toMatch(/^kapitan-agent-[0-9a-f]{8}\.zip$/);
    const zip = path.join(work, download.suggestedFilename());
    await download.saveAs(zip);
    const entries = await zipEntries(zip);
    for (const name of ['install.sh', 'uninstall.sh', 'kapitan-agent', 'kapitan-agent.cjs', 'kapitan.json', 'ca.pem', 'enrolment-token', 'README.txt']) {
      expect(entries.has(`kapitan-agent/${name}`)).toBe(true);
    }
    const config = JSON.parse(entries.get('kapitan-agent/kapitan.json')!.toString()) as { serverUrl: string; enrolmentTokenId: string };
    expect(config.serverUrl).toBe(publicUrl);
    const bundleRow = page.locator(`[data-testid=token-row][data-token-id="${config.enrolmentTokenId}"]`);
    await bundleRow.waitFor();
    expect((await bundleRow.getByTestId('token-purpose').textContent())?.trim()).toBe('bundle');

    await page.getByTestId('install-link-create').click();
    const command = (await page.getByTestId('install-command').textContent())?.trim() ?? '';
    const escaped = publicUrl.replace(/[.]/g, '\\.');
    expect(command).toMatch(new RegExp(`^curl -fsSL --insecure --pinnedpubkey 'sha256//[A-Za-z0-9+/]{43}=' '${escaped}/api/install/kpe_[0-9a-f-]{36}\\.[A-Za-z0-9_-]{43}\\.sh' \\| sh$`));
    await page.getByTestId('install-command-copy').waitFor();
    const url = /'(https:[^']+\.sh)'/.exec(command)![1]!;
    const secret = /\/api\/install\/(.+)\.sh$/.exec(url)![1]!;
    const tokenId = /^kpe_([0-9a-f-]{36})\./.exec(secret)![1]!;
    const installRow = page.locator(`[data-testid=token-row][data-token-id="${tokenId}"]`);
    await installRow.waitFor();
    expect((await installRow.getByTestId('token-purpose').textContent())?.trim()).toBe('one-line install');
    const served = await fetch(url.replace(publicUrl, server.url));
    expect(served.status).toBe(200);
    expect(await served.text()).toContain(secret);

    // The machine shows up on the page, live, when the command's token enrols.
    const enrolled = await owner.api.request<EnrolResponse>('POST', '/api/agent/enrol', { token: null, body: { token: secret, facts: FACTS } });
    expect(enrolled.status).toBe(201);
    await page.locator(`[data-testid=machine-row][data-machine-id="${enrolled.body.machineId}"]`).waitFor();
  });

  test('an operator sees the enrolment tokens but no bundle or one-line install', async () => {
    const second = await launchBrowser({ baseURL: server.url });
    try {
      const { page } = second;
      await logIn(page, operator);
      await page.goto(`/projects/${projectId}/machines`);
      await page.getByTestId('enrolment-tokens').waitFor();
      expect(await page.getByTestId('install-panel').count()).toBe(0);
      expect(await page.getByTestId('bundle-download').count()).toBe(0);
    } finally {
      await second.close();
    }
  });
});
