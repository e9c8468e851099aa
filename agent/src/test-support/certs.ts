/**
 * Certificate authorities and serving certificates for TLS tests, made with
 * the openssl CLI (the agent has no X.509 writer of its own, and needs none).
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tls from 'node:tls';
import { spkiSha256 } from '../trust';

export interface TestCa {
  certPem: string;
  keyFile: string;
  certFile: string;
  pin: string;
  /** A serving certificate for localhost / 127.0.0.1 signed by this CA: key, and cert followed by the CA. */
  serving(): { key: string; cert: string };
}

const openssl = (args: string[], cwd: string) => execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });

export function makeCa(name: string): TestCa {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `kapitan-ca-${name}-`));
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', `/CN=Test CA ${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  const certPem = fs.readFileSync(path.join(dir, 'ca.crt'), 'utf8');
  let n = 0;
  return {
    certPem,
    keyFile: path.join(dir, 'ca.key'),
    certFile: path.join(dir, 'ca.crt'),
    pin: spkiSha256(new X509Certificate(certPem)),
    serving() {
      const id = `leaf${n++}`;
      fs.writeFileSync(path.join(dir, `${id}.ext`), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
      openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${id}.key`, '-out', `${id}.csr`, '-subj', '/CN=localhost'], dir);
      openssl(['x509', '-req', '-in', `${id}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${id}.crt`, '-days', '1', '-extfile', `${id}.ext`], dir);
      return { key: fs.readFileSync(path.join(dir, `${id}.key`), 'utf8'), cert: fs.readFileSync(path.join(dir, `${id}.crt`), 'utf8') + certPem };
    },
  };
}

/**
 * A TLS-terminating fake server that records every byte a client sent after
 * its handshake, and answers each HTTP request (one per connection) with an
 * echo of its body. The HTTP is parsed by hand: a socket handed to Node's
 * HTTP server is read natively, past any listener that would count.
 */
export class RecordingHttpsServer {
  readonly received: Buffer[] = [];
  /** TCP connections accepted, handshake passed or not. */
  connections = 0;
  private readonly tls: tls.Server;
  constructor(
    material: { key: string; cert: string },
    private readonly answer: (body: string) => string = (body) => JSON.stringify({ echo: body }),
  ) {
    this.tls = tls.createServer(material, (socket) => {
      const i = this.received.push(Buffer.alloc(0)) - 1;
      socket.on('error', () => undefined);
      socket.on('data', (d: Buffer) => {
        const all = (this.received[i] = Buffer.concat([this.received[i]!, d]));
        const end = all.indexOf('\r\n\r\n');
        if (end < 0) return;
        const length = Number(/content-length: *(\d+)/i.exec(all.subarray(0, end).toString())?.[1] ?? 0);
        if (all.length < end + 4 + length) return;
        const body = this.answer(all.subarray(end + 4, end + 4 + length).toString());
        socket.end(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
      });
    });
    this.tls.on('tlsClientError', () => undefined);
    this.tls.on('connection', () => this.connections++);
  }
  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.tls.listen(0, '127.0.0.1', resolve));
    return `https://localhost:${(this.tls.address() as AddressInfo).port}`;
  }
  replace(material: { key: string; cert: string }): void {
    this.tls.setSecureContext(material);
  }
  get bytes(): number {
    return this.received.reduce((a, b) => a + b.length, 0);
  }
  close(): Promise<void> {
    return new Promise((resolve) => this.tls.close(() => resolve()));
  }
}
