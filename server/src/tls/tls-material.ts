/**
 * The keys and certificates of HTTPS.
 *
 * Unless an operator configures a certificate, each instance is its own
 * certificate authority: on first start it makes an instance CA (ECDSA P-256,
 * 20 years) and a serving certificate it signs (90 days, renewed from 30 days
 * before expiry, and at once when the public host is not among its names).
 * Agents pin the CA's key, never the serving certificate, so renewal changes
 * nothing on any client. A second CA key, `next`, is made at the same time
 * and published among the pins, so that a rotation of the CA key (a
 * compromise, an algorithm change) can happen without reinstalling agents
 * that took both pins from their bundle.
 *
 * Everything is kept 0600 in the TLS directory; several nodes behind one
 * balancer must share it (or use a configured certificate), or each would
 * be its own CA and agents could pin only one of them.
 */
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createHash, createPrivateKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { TlsPin } from '@kapitan/shared';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 3600_000;
export const SERVING_LIFETIME_DAYS = 90;
export const RENEW_BEFORE_DAYS = 30;

export interface TlsMaterial {
  source: 'generated' | 'configured';
  /** PEM private key of the serving certificate. */
  key: string;
  /** PEM serving certificate followed by its chain. */
  cert: string;
  /** PEM of what an agent should trust. */
  caPem: string;
  pins: TlsPin[];
  serving: X509Certificate;
}

/** base64 SHA-256 of the certificate's SubjectPublicKeyInfo. */
export function spkiPin(cert: X509Certificate): string {
  return createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
}

/** The host names and addresses the serving certificate must cover. */
export function servingNames(publicHost: string, extra: readonly string[] = []): string[] {
  return [...new Set([publicHost, 'localhost', '127.0.0.1', '::1', ...extra].filter(Boolean).map((h) => h.toLowerCase()))];
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n');
  return `-----BEGIN ${label}-----\n${b64.replace(/\n$/, '')}\n-----END ${label}-----\n`;
}

function writeSecret(file: string, content: string): void {
  // Written aside, then renamed: a crash mid-write must not leave half a key where the whole one was.
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, content, { mode: 0o600 });
  renameSync(tmp, file);
}

function readIfExists(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function importKey(pkcs8Pem: string): Promise<CryptoKey> {
  const der = Buffer.from(pkcs8Pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  return webcrypto.subtle.importKey('pkcs8', der, ALG, false, ['sign']) as Promise<CryptoKey>;
}

async function makeCa(dir: string, name: string, label: string): Promise<{ keyPem: string; certPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(16).toString('hex').replace(/^[89a-f]/, '1'),
    name: `CN=Kapitan instance CA (${label}) ${randomBytes(4).toString('hex')}`,
    notBefore: new Date(now - DAY_MS),
    notAfter: new Date(now + 20 * 365 * DAY_MS),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const keyPem = pem('PRIVATE KEY', (await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) as ArrayBuffer);
  const certPem = cert.toString('pem') + '\n';
  writeSecret(join(dir, `${name}.key`), keyPem);
  writeSecret(join(dir, `${name}.crt`), certPem);
  return { keyPem, certPem };
}

async function makeServing(ca: { keyPem: string; certPem: string }, names: readonly string[], now = Date.now()): Promise<{ keyPem: string; certPem: string }> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(16).toString('hex').replace(/^[89a-f]/, '1'),
    subject: `CN=${names[0]}`,
    issuer: caCert.subject,
    // Valid from a day back (clock skew between server and agents), and never from a future `now`.
    notBefore: new Date(Math.min(now, Date.now()) - DAY_MS),
    notAfter: new Date(now + SERVING_LIFETIME_DAYS * DAY_MS),
    signingKey: await importKey(ca.keyPem),
    publicKey: keys.publicKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(names.map((n) => ({ type: isIP(n) ? 'ip' : 'dns', value: n }) as x509.JsonGeneralName)),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    keyPem: pem('PRIVATE KEY', (await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) as ArrayBuffer),
    certPem: cert.toString('pem') + '\n',
  };
}

/** Does `cert` name `host` (DNS or IP), and stay valid beyond the renewal margin? */
export function servingIsFresh(cert: X509Certificate, names: readonly string[], now = Date.now()): boolean {
  if (Date.parse(cert.validTo) - now < RENEW_BEFORE_DAYS * DAY_MS) return false;
  return names.every((n) => (isIP(n) ? cert.checkIP(n) !== undefined : cert.checkHost(n) !== undefined));
}

const pinOf = (cert: X509Certificate, role: TlsPin['role']): TlsPin => ({
  spkiSha256: spkiPin(cert),
  subject: cert.subject.replace(/\n/g, ', '),
  role,
  notAfter: new Date(cert.validTo).toISOString(),
});

/**
 * The generated material in `dir`: the instance CA and its `next` key made
 * on first use and kept, the serving certificate renewed when it is due.
 */
export async function generatedMaterial(dir: string, names: readonly string[], now = Date.now()): Promise<TlsMaterial> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const existing = (name: string) => {
    const keyPem = readIfExists(join(dir, `${name}.key`));
    const certPem = readIfExists(join(dir, `${name}.crt`));
    return keyPem && certPem ? { keyPem, certPem } : undefined;
  };
  const ca = existing('ca') ?? (await makeCa(dir, 'ca', 'current'));
  const next = existing('ca-next') ?? (await makeCa(dir, 'ca-next', 'next'));
  let serving = existing('server');
  if (!serving || !servingIsFresh(new X509Certificate(serving.certPem), names, now) || !new X509Certificate(serving.certPem).checkIssued(new X509Certificate(ca.certPem))) {
    serving = await makeServing(ca, names, now);
    writeSecret(join(dir, 'server.key'), serving.keyPem);
    writeSecret(join(dir, 'server.crt'), serving.certPem);
  }
  const caCert = new X509Certificate(ca.certPem);
  return {
    source: 'generated',
    key: serving.keyPem,
    cert: serving.certPem + ca.certPem,
    caPem: ca.certPem + next.certPem,
    pins: [pinOf(caCert, 'current'), pinOf(new X509Certificate(next.certPem), 'next')],
    serving: new X509Certificate(serving.certPem),
  };
}

/** A configured certificate (and the chain in its file) and key. Throws with a message naming what is wrong. */
export function configuredMaterial(certFile: string, keyFile: string): TlsMaterial {
  const certText = readFileSync(certFile, 'utf8');
  const key = readFileSync(keyFile, 'utf8');
  const blocks = certText.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (!blocks.length) throw new Error(`${certFile} holds no PEM certificate`);
  const chain = blocks.map((b) => new X509Certificate(b));
  const serving = chain[0];
  // The leaf's key must be the one configured: a mismatch would only show as failed handshakes.
  if (!serving.checkPrivateKey(createPrivateKey(key))) throw new Error(`${keyFile} is not the key of the certificate in ${certFile}`);
  // Pin the issuers when the file holds them (they outlive the leaf); a lone certificate is pinned itself.
  const pinned = chain.length > 1 ? chain.slice(1) : chain;
  return {
    source: 'configured',
    key,
    cert: certText,
    caPem: pinned.map((c) => c.toString()).join(''),
    pins: pinned.map((c) => pinOf(c, 'chain')),
    serving,
  };
}
