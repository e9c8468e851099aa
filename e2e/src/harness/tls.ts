/**
 * TLS fixtures for agent trust tests: certificate authorities made with the
 * openssl CLI, a TLS-terminating impostor that records every byte a client
 * sends after its handshake, a TCP relay whose target can be switched (the
 * same address, another server behind it), and an HTTP CONNECT proxy,
 * optionally TLS-inspecting (it terminates TLS with its own CA, as
 * corporate proxies do, and dials the server itself).
 */
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { registerCleanup } from './cleanup';

/** base64 SHA-256 of a certificate's SubjectPublicKeyInfo: an agent's `--pin`. */
export function spkiPinOf(certPem: string): string {
  return createHash('sha256').update(new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' })).digest('base64');
}

export interface TestCa {
  certPem: string;
  certFile: string;
  pin: string;
  /** A serving certificate for localhost / 127.0.0.1 signed by this CA: its key, and it followed by the CA. */
  serving(): { key: string; cert: string };
}

/** A throwaway CA (ECDSA P-256), removed after the file. */
export function makeTestCa(name: string): TestCa {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `kapitan-e2e-ca-${name}-`));
  registerCleanup(`ca ${name}`, async () => fs.rmSync(dir, { recursive: true, force: true }));
  const openssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', `/CN=e2e CA ${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  const certPem = fs.readFileSync(path.join(dir, 'ca.crt'), 'utf8');
  let n = 0;
  return {
    certPem,
    certFile: path.join(dir, 'ca.crt'),
    pin: spkiPinOf(certPem),
    serving() {
      const id = `leaf${n++}`;
      fs.writeFileSync(path.join(dir, `${id}.ext`), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
      openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${id}.key`, '-out', `${id}.csr`, '-subj', '/CN=localhost']);
      openssl(['x509', '-req', '-in', `${id}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${id}.crt`, '-days', '1', '-extfile', `${id}.ext`]);
      return { key: fs.readFileSync(path.join(dir, `${id}.key`), 'utf8'), cert: fs.readFileSync(path.join(dir, `${id}.crt`), 'utf8') + certPem };
    },
  };
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

function closer(server: net.Server, sockets: Set<net.Socket>): () => Promise<void> {
  let closed: Promise<void> | undefined;
  return () =>
    (closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of sockets) s.destroy();
    }));
}

function track(sockets: Set<net.Socket>, s: net.Socket): void {
  sockets.add(s);
  s.on('close', () => sockets.delete(s));
  s.on('error', () => undefined);
}

export interface RecordingTlsServer {
  readonly port: number;
  /** TCP connections accepted (the client reached it). */
  readonly connections: number;
  /** Handshakes that completed on this side. */
  readonly handshakes: number;
  /** Every byte received after a handshake, all connections together. */
  readonly received: Buffer;
  close(): Promise<void>;
}

/** A TLS server presenting `material` that answers nothing and records what clients send after the handshake. */
export async function startRecordingTlsServer(material: { key: string; cert: string }): Promise<RecordingTlsServer> {
  const sockets = new Set<net.Socket>();
  let received = Buffer.alloc(0);
  let handshakes = 0;
  let connections = 0;
  const server = tls.createServer(material, (socket) => {
    handshakes++;
    track(sockets, socket);
    socket.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
  });
  server.on('connection', (s: net.Socket) => {
    connections++;
    track(sockets, s);
  });
  server.on('tlsClientError', () => undefined);
  const port = await listen(server);
  const close = closer(server, sockets);
  registerCleanup(`recording TLS server ${port}`, close);
  return {
    port,
    get connections() {
      return connections;
    },
    get handshakes() {
      return handshakes;
    },
    get received() {
      return received;
    },
    close,
  };
}

export interface TcpRelay {
  readonly port: number;
  /** Where new connections go from now on; open ones are cut. */
  switchTo(port: number): void;
  close(): Promise<void>;
}

/** One address in front of a server that can be swapped for another: an agent enrolled at the relay meets whatever is behind it. */
export async function startTcpRelay(targetPort: number): Promise<TcpRelay> {
  const sockets = new Set<net.Socket>();
  let target = targetPort;
  const server = net.createServer((client) => {
    track(sockets, client);
    const upstream = net.connect(target, '127.0.0.1');
    track(sockets, upstream);
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  const port = await listen(server);
  const close = closer(server, sockets);
  registerCleanup(`tcp relay ${port}`, close);
  return {
    port,
    switchTo(p) {
      target = p;
      for (const s of sockets) s.destroy();
    },
    close,
  };
}

export interface ConnectProxy {
  readonly url: string;
  readonly port: number;
  /** `host:port` of every CONNECT request, in order. */
  readonly connects: string[];
  /** Inspecting proxies: what clients sent after their handshake with the proxy. */
  readonly decrypted: Buffer;
  close(): Promise<void>;
}

export interface ConnectProxyOptions {
  /**
   * Terminate the client's TLS with this certificate (a TLS-inspecting
   * proxy) and dial the server with TLS trusting `upstreamCa`.
   */
  inspect?: { material: { key: string; cert: string }; upstreamCa: string };
}

/** An HTTP CONNECT proxy on node's http 'connect' event. */
export async function startConnectProxy(options: ConnectProxyOptions = {}): Promise<ConnectProxy> {
  const sockets = new Set<net.Socket>();
  const connects: string[] = [];
  let decrypted = Buffer.alloc(0);
  const server = http.createServer((_req, res) => res.writeHead(405).end('CONNECT only\n'));
  server.on('connection', (s: net.Socket) => track(sockets, s));
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    const target = req.url ?? '';
    connects.push(target);
    const m = /^(.+):(\d+)$/.exec(target);
    if (!m) {
      client.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    const [host, port] = [m[1]!.replace(/^\[|\]$/g, ''), Number(m[2])];
    if (!options.inspect) {
      const upstream = net.connect(port, host, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        if (head.length) upstream.write(head);
        client.pipe(upstream).pipe(client);
      });
      track(sockets, upstream);
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
      return;
    }
    const inspect = options.inspect;
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    const inner = new tls.TLSSocket(client, { isServer: true, key: inspect.material.key, cert: inspect.material.cert });
    track(sockets, inner);
    let upstream: tls.TLSSocket | undefined;
    inner.once('secure', () => {
      upstream = tls.connect({ host, port, servername: host === '127.0.0.1' ? undefined : host, ca: inspect.upstreamCa });
      track(sockets, upstream);
      upstream.on('close', () => inner.destroy());
      inner.on('close', () => upstream?.destroy());
      upstream.pipe(inner);
    });
    inner.on('data', (d: Buffer) => {
      decrypted = Buffer.concat([decrypted, d]);
      upstream?.write(d);
    });
  });
  const port = await listen(server);
  const close = closer(server, sockets);
  registerCleanup(`connect proxy ${port}`, close);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    connects,
    get decrypted() {
      return decrypted;
    },
    close,
  };
}
