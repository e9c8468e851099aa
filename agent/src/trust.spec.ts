import * as https from 'node:https';
import type * as tls from 'node:tls';
import { makeCa, RecordingHttpsServer, type TestCa } from './test-support/certs';
import { isTrustFailure, parseCaPem, parsePins, parseProxyUrl, PinMismatchError, proxyFor, requestJson, serverTransport, type ServerTrust } from './trust';

let ours: TestCa;
let next: TestCa;
let other: TestCa;
let server: RecordingHttpsServer;
let url: string;
beforeAll(() => {
  ours = makeCa('ours');
  next = makeCa('next');
  other = makeCa('other');
});
beforeEach(async () => {
  server = new RecordingHttpsServer(ours.serving());
  url = await server.listen();
});
afterEach(() => server.close());

const PROXY_VARS = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'ALL_PROXY', 'all_proxy', 'NO_PROXY', 'no_proxy'];

/** Runs `fn` with no proxy variables in process.env (whatever the machine running the tests has), then restores them. */
async function withoutProxyEnv<T>(fn: () => T | Promise<T>): Promise<T> {
  const saved = Object.fromEntries(PROXY_VARS.map((k) => [k, process.env[k]]));
  for (const k of PROXY_VARS) delete process.env[k];
  try {
    return await fn();
  } finally {
    for (const k of PROXY_VARS) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
}

async function post(trust: ServerTrust, onUntrusted?: (e: Error) => void) {
  const t = await withoutProxyEnv(() => serverTransport(url, trust, { onUntrusted }));
  try {
    return await requestJson(`${url}/api/agent/enrol`, 'POST', { token: 'SECRET-TOKEN' }, t.requestOptions, 10_000);
  } finally {
    t.destroy();
  }
}

describe('server trust', () => {
  it('talks to a server whose chain holds a pinned key, verified with the enrolled CA', async () => {
    const res = await post({ pins: [ours.pin], caPem: ours.certPem });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text)).toEqual({ echo: JSON.stringify({ token: 'SECRET-TOKEN' }) });
    expect(server.received.join('')).toContain('SECRET-TOKEN'); // the recorder sees what a client sends
  });

  it('refuses a server whose chain holds no pinned key, before sending a byte, and reports it', async () => {
    const untrusted: Error[] = [];
    // The CA file trusts the server's CA: only the pin can refuse it.
    const err = await post({ pins: [other.pin], caPem: ours.certPem + other.certPem }, (e) => untrusted.push(e)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PinMismatchError);
    expect(isTrustFailure(err)).toBe(true);
    expect((err as Error).message).toContain(ours.pin); // what was presented, for the operator
    expect(untrusted).toEqual([err]);
    expect(server.connections).toBe(1); // it reached the server
    expect(server.bytes).toBe(0); // and nothing after it
  });

  it('refuses a server the enrolled CA did not sign, even with a matching pin', async () => {
    const untrusted: Error[] = [];
    const err = await post({ pins: [ours.pin], caPem: other.certPem }, (e) => untrusted.push(e)).catch((e: unknown) => e);
    expect(isTrustFailure(err)).toBe(true);
    expect((err as { code: string }).code).toMatch(/UNABLE_TO_VERIFY|SELF_SIGNED|ISSUER/);
    expect(untrusted).toHaveLength(1);
    expect(server.bytes).toBe(0);
  });

  it('checks the pins at every new connection: after a rotation, a transport that pinned only the old key is refused on its next one', async () => {
    const t = await serverTransport(url, { pins: [ours.pin], caPem: ours.certPem + next.certPem });
    try {
      expect((await requestJson(`${url}/x`, 'POST', {}, t.requestOptions, 10_000)).status).toBe(200);
      // The server's CA key rotates to the published next key: still pinned, still fine for a transport pinning both…
      server.replace(next.serving());
      t.destroy(); // a new connection
      const both = await serverTransport(url, { pins: [ours.pin, next.pin], caPem: ours.certPem + next.certPem });
      expect((await requestJson(`${url}/x`, 'POST', {}, both.requestOptions, 10_000)).status).toBe(200);
      both.destroy();
      // …and refused by the one that pinned only the old key, on its next connection.
      const before = server.bytes;
      const err = await requestJson(`${url}/x`, 'POST', {}, t.requestOptions, 10_000).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PinMismatchError);
      expect(server.bytes).toBe(before);
    } finally {
      t.destroy();
    }
  });

  it('resumes no TLS session: a resumed one would skip checkServerIdentity', async () => {
    const t = await withoutProxyEnv(() => serverTransport(url, { pins: [ours.pin], caPem: ours.certPem }));
    try {
      const reused: boolean[] = [];
      for (let i = 0; i < 3; i++) {
        // The server closes each connection: every request is a new handshake, which could resume the last one.
        await new Promise<void>((resolve, reject) => {
          const req = https.request(`${url}/x`, { ...t.requestOptions, method: 'POST' }, (res) => res.resume().on('end', resolve));
          req.on('socket', (socket) => socket.once('secureConnect', () => reused.push((socket as tls.TLSSocket).isSessionReused())));
          req.on('error', reject);
          req.end('{}');
        });
      }
      expect(reused).toEqual([false, false, false]);
    } finally {
      t.destroy();
    }
  });

  it('leaves plain Node defaults alone without pins, CA or proxy', async () => {
    const t = await withoutProxyEnv(() => serverTransport(url, { pins: [] }));
    expect(t.requestOptions).toEqual({});
    expect(t.socketOptions).toEqual({});
    expect(t.proxy).toBeNull();
  });
});

describe('trust input', () => {
  it('validates pins', () => {
    expect(parsePins([ours.pin, ours.pin, next.pin])).toEqual([ours.pin, next.pin]);
    expect(() => parsePins(['abc'])).toThrow(/--pin "abc" must be a base64 SHA-256/);
    expect(() => parsePins(['AA:BB'])).toThrow(/--pin/);
  });

  it('validates a CA file', () => {
    expect(parseCaPem(`junk\n${ours.certPem}\n${next.certPem}`, 'f')).toBe(ours.certPem + next.certPem);
    expect(() => parseCaPem('nothing here', 'ca.pem')).toThrow('ca.pem holds no PEM certificate');
    expect(() => parseCaPem('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', 'ca.pem')).toThrow(/ca.pem: certificate 1 is not valid/);
  });

  it('takes the proxy from the environment, honouring NO_PROXY, and refuses one that is not HTTP CONNECT', () =>
    withoutProxyEnv(() => {
      expect(proxyFor('https://kapitan.example:8443', {})).toBeNull();
      process.env.HTTPS_PROXY = 'http://proxy.example:3128';
      expect(proxyFor('https://kapitan.example:8443', {})).toBe('http://proxy.example:3128');
      expect(proxyFor('https://kapitan.example:8443', { proxy: 'http://stored:1' })).toBe('http://stored:1');
      process.env.NO_PROXY = '.example';
      expect(proxyFor('https://kapitan.example:8443', {})).toBeNull();
      expect(proxyFor('https://kapitan.example:8443', { proxy: 'http://stored:1' })).toBe('http://stored:1'); // given on purpose
      delete process.env.NO_PROXY;
      delete process.env.HTTPS_PROXY;
      process.env.ALL_PROXY = 'socks5://proxy.example:1080';
      expect(() => proxyFor('https://kapitan.example:8443', {})).toThrow(/must be an http\(s\) URL of an HTTP CONNECT proxy, got "socks5:"/);
    }));

  it('validates a proxy URL', () => {
    expect(parseProxyUrl('http://proxy.example:3128/')).toBe('http://proxy.example:3128');
    expect(parseProxyUrl('http://u:p@proxy.example:3128')).toBe('http://u:p@proxy.example:3128');
    expect(() => parseProxyUrl('socks5://proxy:1080')).toThrow(/--proxy must be an http\(s\) URL/);
    expect(() => parseProxyUrl('proxy:3128')).toThrow(/--proxy must be an http\(s\) URL/);
    expect(() => parseProxyUrl('http://proxy:3128/path')).toThrow(/must not have a path/);
  });
});
