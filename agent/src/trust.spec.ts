import { makeCa, RecordingHttpsServer, type TestCa } from './test-support/certs';
import { isTrustFailure, parseCaPem, parsePins, parseProxyUrl, PinMismatchError, requestJson, serverTransport, type ServerTrust } from './trust';

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

async function post(trust: ServerTrust, onUntrusted?: (e: Error) => void) {
  const t = await serverTransport(url, trust, { onUntrusted });
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

  it('checks the pins at every connection, not only the first (no session resumption past the check)', async () => {
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

  it('leaves plain Node defaults alone without pins, CA or proxy', async () => {
    const t = await serverTransport(url, { pins: [] });
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

  it('validates a proxy URL', () => {
    expect(parseProxyUrl('http://proxy.example:3128/')).toBe('http://proxy.example:3128');
    expect(parseProxyUrl('http://u:p@proxy.example:3128')).toBe('http://u:p@proxy.example:3128');
    expect(() => parseProxyUrl('socks5://proxy:1080')).toThrow(/--proxy must be an http\(s\) URL/);
    expect(() => parseProxyUrl('proxy:3128')).toThrow(/--proxy must be an http\(s\) URL/);
    expect(() => parseProxyUrl('http://proxy:3128/path')).toThrow(/must not have a path/);
  });
});
