/// <reference path="./proxy-from-env.d.ts" />
/**
 * How the agent trusts the server it dials, and how it reaches it.
 *
 * Trust (from `enrol --pin … --ca-file …`, kept in the state): the CA
 * certificates to verify the server's chain with (instead of the system's),
 * and SPKI pins: some certificate of the chain the server presents must have
 * one of the pinned keys. Both are checked during the TLS handshake, before
 * a single byte of HTTP (enrolment token, machine credential, socket.io
 * auth) is written: Node writes nothing on a socket that fails
 * `checkServerIdentity`. Every handshake is a full one (no TLS session
 * cache), so every connection is checked against the pins, not only the first.
 *
 * Reach: an HTTP CONNECT proxy, from `enrol --proxy URL` (kept in the state),
 * else `HTTPS_PROXY` / `https_proxy` (`HTTP_PROXY` for an http:// server)
 * honouring `NO_PROXY`. The proxy library is loaded only when a proxy is
 * used: most agents have none and should not carry it in memory.
 */
import { createHash, X509Certificate } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { SpkiPinSchema } from '@kapitan/shared';
import { getProxyForUrl } from 'proxy-from-env';

export interface ServerTrust {
  /** base64 SHA-256 of SubjectPublicKeyInfo; empty: no pinning. */
  pins: readonly string[];
  /** PEM certificates to verify the server's chain with; absent: the system's CAs. */
  caPem?: string;
  /** `--proxy URL` given at enrolment; it wins over the environment. */
  proxy?: string;
}

/** The server's chain holds none of the pinned keys. */
export class PinMismatchError extends Error {
  readonly code = 'KAPITAN_PIN_MISMATCH';
  constructor(
    readonly host: string,
    readonly presented: readonly string[],
    readonly pinned: readonly string[],
  ) {
    super(
      `the server ${host} presented no certificate with a pinned key (presented keys: ${presented.join(', ') || 'none'}; pinned: ${pinned.join(', ')})`,
    );
    this.name = 'PinMismatchError';
  }
}

/** OpenSSL's verification failures and Node's host name check, as `err.code`: the server is not the one trusted. */
const TLS_VERIFY_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_CHAIN_TOO_LONG',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'KAPITAN_PIN_MISMATCH',
]);

/** Did this error come from the server failing our trust (pins, CA, host name), not from the network? */
export function isTrustFailure(err: unknown): err is Error & { code: string } {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && TLS_VERIFY_CODES.has(code);
}

/** base64 SHA-256 of a certificate's SubjectPublicKeyInfo (what `GET /api/instance/tls` lists as `spkiSha256`). */
export function spkiSha256(cert: X509Certificate): string {
  return createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
}

/** The chain of `getPeerCertificate(true)`: the leaf, then each issuer, up to the self-signed root. */
export function peerChain(cert: tls.PeerCertificate | tls.DetailedPeerCertificate): X509Certificate[] {
  const chain: X509Certificate[] = [];
  let c: tls.DetailedPeerCertificate | undefined = cert as tls.DetailedPeerCertificate;
  while (c?.raw && !chain.some((x) => x.raw.equals(c!.raw))) {
    chain.push(new X509Certificate(c.raw));
    c = c.issuerCertificate;
  }
  return chain;
}

/** Node's host name check, then the pins: `checkServerIdentity` for tls.connect, https and ws. */
export function pinnedServerIdentity(pins: readonly string[]): (host: string, cert: tls.PeerCertificate) => Error | undefined {
  const pinned = new Set(pins);
  return (host, cert) => {
    const err = tls.checkServerIdentity(host, cert);
    if (err) return err;
    const presented = peerChain(cert).map(spkiSha256);
    if (presented.some((p) => pinned.has(p))) return undefined;
    return new PinMismatchError(host, presented, [...pinned]);
  };
}

/** Pins from the command line, validated. Throws naming the bad one. */
export function parsePins(items: readonly string[]): string[] {
  const pins: string[] = [];
  for (const item of items) {
    const parsed = SpkiPinSchema.safeParse(item.trim());
    if (!parsed.success) throw new Error(`--pin ${JSON.stringify(item)} ${parsed.error.issues[0]?.message ?? 'is invalid'}`);
    if (!pins.includes(parsed.data)) pins.push(parsed.data);
  }
  return pins;
}

/** The certificates of a PEM file, each parsed, re-encoded one after another. Throws when there is none or one is broken. */
export function parseCaPem(text: string, name: string): string {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (!blocks.length) throw new Error(`${name} holds no PEM certificate`);
  return blocks
    .map((b, i) => {
      try {
        return new X509Certificate(b).toString();
      } catch (e) {
        throw new Error(`${name}: certificate ${i + 1} is not valid (${(e as Error).message})`);
      }
    })
    .join('');
}

/** `--proxy URL`: an http(s) URL with no path, query or fragment (credentials allowed: Proxy-Authorization). */
export function parseProxyUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new Error(`--proxy must be an http(s) URL, got ${JSON.stringify(raw)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`--proxy must be an http(s) URL, got ${JSON.stringify(raw)}`);
  if ((u.pathname && u.pathname !== '/') || u.search || u.hash) throw new Error('--proxy must not have a path, query or fragment');
  return u.href.replace(/\/$/, '');
}

/** The proxy for `serverUrl`: `trust.proxy`, else the environment (`HTTPS_PROXY`, `NO_PROXY`…), else none. */
export function proxyFor(serverUrl: string, trust: Pick<ServerTrust, 'proxy'>): string | null {
  if (trust.proxy) return trust.proxy;
  // proxy-from-env reads process.env: the process's own environment, as curl and most tools do.
  const fromEnv = getProxyForUrl(serverUrl);
  if (!fromEnv) return null;
  let u: URL | undefined;
  try {
    u = new URL(fromEnv);
  } catch {
    u = undefined;
  }
  // A socks:// ALL_PROXY would otherwise be sent HTTP CONNECT requests it cannot parse.
  if (!u || (u.protocol !== 'http:' && u.protocol !== 'https:')) {
    throw new Error(`the proxy from the environment (HTTPS_PROXY, HTTP_PROXY or ALL_PROXY) must be an http(s) URL of an HTTP CONNECT proxy, got ${JSON.stringify(u ? u.protocol : 'an unparsable URL')}`);
  }
  return fromEnv;
}

export interface ServerTransport {
  /** For http(s).request: the agent that applies trust and proxy. */
  requestOptions: https.RequestOptions;
  /** For socket.io-client (its websocket transport hands these to ws). */
  socketOptions: Record<string, unknown>;
  /** The proxy in use, or null. */
  proxy: string | null;
  /** Close kept-alive sockets. */
  destroy(): void;
}

export interface TransportOptions {
  /**
   * Called (once per failing connection) when a server fails the configured
   * trust: pins, CA, host name. Only with pins or a CA configured: without,
   * the system's trust decides and its failures are ordinary connection errors.
   */
  onUntrusted?: (err: Error) => void;
}

/**
 * What every connection to the server (enrolment, socket, downloads) is
 * made with. No trust configured and no proxy: Node's defaults, unchanged.
 */
export async function serverTransport(serverUrl: string, trust: ServerTrust, options: TransportOptions = {}): Promise<ServerTransport> {
  const secure = new URL(serverUrl).protocol === 'https:';
  const proxy = proxyFor(serverUrl, trust);
  const trusted = secure && (trust.pins.length > 0 || !!trust.caPem);
  const tlsOptions: tls.ConnectionOptions = trusted
    ? {
        rejectUnauthorized: true,
        ...(trust.caPem ? { ca: trust.caPem } : {}),
        ...(trust.pins.length ? { checkServerIdentity: pinnedServerIdentity(trust.pins) } : {}),
      }
    : {};
  if (!trusted && !proxy) return { requestOptions: {}, socketOptions: {}, proxy: null, destroy: () => undefined };

  const watch = (socket: Duplex): void => {
    if (!trusted || !options.onUntrusted || !(socket instanceof tls.TLSSocket)) return;
    const report = options.onUntrusted;
    socket.once('error', (err) => {
      if (isTrustFailure(err)) report(err);
    });
  };

  let agent: http.Agent;
  if (proxy) {
    const { HttpsProxyAgent } = await import('https-proxy-agent');
    class TrustedProxyAgent extends HttpsProxyAgent<string> {
      override async connect(req: http.ClientRequest, opts: Parameters<InstanceType<typeof HttpsProxyAgent<string>>['connect']>[1]) {
        const socket = await super.connect(req, { ...opts, ...tlsOptions });
        watch(socket);
        return socket;
      }
    }
    agent = new TrustedProxyAgent(proxy, { keepAlive: true });
  } else {
    class TrustedAgent extends https.Agent {
      override createConnection(...args: Parameters<https.Agent['createConnection']>): ReturnType<https.Agent['createConnection']> {
        const socket = super.createConnection(...args);
        if (socket) watch(socket);
        return socket;
      }
    }
    // No session cache: a resumed session skips checkServerIdentity, and every connection is to face the pins.
    agent = new TrustedAgent({ keepAlive: true, maxCachedSessions: 0, ...tlsOptions });
  }
  return {
    requestOptions: { agent, ...tlsOptions },
    socketOptions: { agent, ...tlsOptions },
    proxy,
    destroy: () => agent.destroy(),
  };
}

export interface JsonResponse {
  status: number;
  statusText: string;
  text: string;
}

/** A JSON request over the transport (the enrolment: fetch has no place for pins or a proxy agent). */
export function requestJson(url: string, method: string, body: unknown, requestOptions: https.RequestOptions, timeoutMs: number): Promise<JsonResponse> {
  const u = new URL(url);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const request = u.protocol === 'https:' ? https.request : http.request;
  return new Promise<JsonResponse>((resolve, reject) => {
    const req = request(
      u,
      {
        ...requestOptions,
        method,
        headers: {
          accept: 'application/json',
          ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
        },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? '', text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(payload);
  });
}
