import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io } from 'socket.io-client';
import { createTestApp, describeBothDatabases, TestApp } from '../testing/test-app';

/**
 * Headers, namespaces and timeouts of the HTTP server itself: security
 * headers on API and dashboard responses, HSTS only over HTTPS, the
 * default socket.io namespace closed, and a slowloris client cut within
 * the headers timeout instead of ~80 s.
 */
const HEADERS_TIMEOUT_SECONDS = 2;
const INLINE = "document.documentElement.dataset.x='1'";

describeBothDatabases('HTTP hardening', (database) => {
  let t: TestApp;
  let webDir: string;
  beforeAll(async () => {
    webDir = mkdtempSync(join(tmpdir(), 'kapitan-web-'));
    writeFileSync(join(webDir, 'index.html'), `<!doctype html><html><head><script>${INLINE}</script><script src="main.js" type="module"></script></head><body></body></html>`);
    writeFileSync(join(webDir, 'main.js'), 'export {};');
    t = await createTestApp({ database, env: { KAPITAN_WEB_DIR: webDir, KAPITAN_HEADERS_TIMEOUT_SECONDS: String(HEADERS_TIMEOUT_SECONDS) } });
  });
  afterAll(async () => {
    await t?.close();
    rmSync(webDir, { recursive: true, force: true });
  });

  const expectSecurityHeaders = (headers: Record<string, string | undefined>) => {
    const csp = headers['content-security-policy'] ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("object-src 'none'");
    expect(csp).toMatch(/script-src 'self'( 'sha256-[^']+')*;/);
    expect(csp).not.toMatch(/script-src[^;]*unsafe-inline/);
    expect(headers['x-frame-options']).toBe('DENY');
    expect(headers['x-content-type-options']).toBe('nosniff');
    expect(headers['referrer-policy']).toBe('no-referrer');
  };

  it('API responses carry the security headers, errors included', async () => {
    const ok = await t.http.get('/api/health');
    expect(ok.status).toBe(200);
    expectSecurityHeaders(ok.headers);
    const refused = await t.http.get('/api/me');
    expect(refused.status).toBe(401);
    expectSecurityHeaders(refused.headers);
  });

  it('dashboard responses carry them too; the inline script of index.html is allowed by its hash, nothing else inline', async () => {
    const page = await t.http.get('/');
    expect(page.status).toBe(200);
    expect(page.text).toContain(INLINE);
    expectSecurityHeaders(page.headers);
    const hash = createHash('sha256').update(INLINE).digest('base64');
    expect(page.headers['content-security-policy']).toContain(`'sha256-${hash}'`);
    const asset = await t.http.get('/main.js');
    expect(asset.status).toBe(200);
    expectSecurityHeaders(asset.headers);
  });

  it('HSTS only on a request that came over HTTPS', async () => {
    expect((await t.http.get('/api/health')).headers['strict-transport-security']).toBeUndefined();
    // Behind the trusted (loopback) proxy that terminated TLS.
    const secure = await t.http.get('/api/health').set('X-Forwarded-Proto', 'https');
    expect(secure.headers['strict-transport-security']).toMatch(/^max-age=\d{7,}/);
  });

  it('the default socket.io namespace refuses connections', async () => {
    const socket = io(t.url, { transports: ['websocket'], reconnection: false, timeout: 5_000 });
    try {
      const outcome = await new Promise<{ connected: boolean; data?: unknown }>((resolve) => {
        socket.once('connect', () => resolve({ connected: true }));
        socket.once('connect_error', (err: Error & { data?: unknown }) => resolve({ connected: false, data: err.data }));
      });
      expect(outcome).toEqual({ connected: false, data: { code: 'not_found', message: expect.stringContaining('/live') } });
    } finally {
      socket.close();
    }
  });

  it('a slowloris client (partial header, then silence) is cut within the headers timeout', async () => {
    const started = Date.now();
    const socket = net.connect(new URL(t.url).port ? Number(new URL(t.url).port) : 80, '127.0.0.1');
    let answer = '';
    socket.on('data', (d) => (answer += d.toString()));
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write('GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    const boundMs = (HEADERS_TIMEOUT_SECONDS + 3) * 1000;
    const closedAfter = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`still open after ${boundMs} ms`)), boundMs);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve(Date.now() - started);
      });
    }).finally(() => socket.destroy());
    expect(closedAfter).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_SECONDS * 1000 - 100);
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
  });

  it('a client that sends its headers in time is served (control)', async () => {
    const res = await t.http.get('/api/health');
    expect(res.status).toBe(200);
  });
});
