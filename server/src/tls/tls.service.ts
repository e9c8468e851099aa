import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import type { InstanceTls } from '@kapitan/shared';
import type { Server as HttpServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import * as tls from 'node:tls';
import { SchedulerService } from '../common/scheduler.service';
import { APP_CONFIG, AppConfig } from '../config/config';
import { configuredMaterial, generatedMaterial, servingNames, spkiPin, type TlsMaterial } from './tls-material';

/** How often the serving certificate is checked for renewal (and a configured one re-read). */
const RENEW_CHECK_MS = 6 * 3600_000;

/**
 * HTTPS on its own port, served by the same HTTP server as plain HTTP: each
 * TLS connection, once its handshake is done, is handed to that server as a
 * connection of its own, so the REST API, the dashboard and socket.io (with
 * its upgrades) are the same on both ports, with no second app to keep in step.
 */
@Injectable()
export class TlsService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(TlsService.name);
  private material: TlsMaterial | undefined;
  private server: tls.Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly scheduler: SchedulerService,
  ) {}

  /** The HTTPS listener while it listens: a drain closes it with the plain one. */
  get listener(): tls.Server | undefined {
    return this.server;
  }

  get enabled(): boolean {
    return this.config.tls.httpsPort !== null;
  }

  async onModuleInit(): Promise<void> {
    if (!this.enabled) return;
    this.material = await this.load();
    this.scheduler.every('tls-renewal', RENEW_CHECK_MS, () => this.refresh());
  }

  /** Listens for HTTPS on the configured port, handing connections to `http`. Resolves with the port. */
  async listen(http: HttpServer, host?: string): Promise<number | null> {
    if (!this.material || this.config.tls.httpsPort === null) return null;
    const server = tls.createServer({ ...this.secureOptions(this.material), minVersion: 'TLSv1.2', ALPNProtocols: ['http/1.1'] }, (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      http.emit('connection', socket);
    });
    // A client that fails its handshake (a scanner, a wrong pin on its side) is its own problem, not an error of ours.
    server.on('tlsClientError', (err) => this.logger.debug({ err: err.message }, 'TLS handshake failed'));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.config.tls.httpsPort!, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    return (server.address() as AddressInfo).port;
  }

  async onApplicationShutdown(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
  }

  info(): InstanceTls {
    const m = this.material;
    return {
      enabled: this.enabled,
      httpsPort: this.server ? (this.server.address() as AddressInfo).port : this.config.tls.httpsPort,
      publicUrl: this.config.tls.publicUrl,
      source: m?.source ?? null,
      pins: m?.pins ?? [],
      serving: m
        ? {
            subject: m.serving.subject.replace(/\n/g, ', '),
            dnsNames: (m.serving.subjectAltName ?? '').split(', ').filter(Boolean),
            notAfter: new Date(m.serving.validTo).toISOString(),
            fingerprint256: m.serving.fingerprint256,
          }
        : null,
      caPem: m?.caPem ?? null,
    };
  }

  /**
   * The SPKI pin of the serving certificate of an instance that is its own
   * CA (null otherwise): what a one-line install command makes curl require,
   * since curl can pin the server's key but not a CA's. It changes at each
   * renewal, which is why only short-lived commands carry it.
   */
  servingSpkiPin(): string | null {
    return this.material?.source === 'generated' ? spkiPin(this.material.serving) : null;
  }

  /** Renews a due serving certificate (or picks up a replaced configured one) without dropping a connection. */
  async refresh(now = Date.now()): Promise<void> {
    if (!this.enabled) return;
    const next = await this.load(now);
    const changed = next.serving.fingerprint256 !== this.material?.serving.fingerprint256;
    this.material = next;
    if (changed) {
      this.server?.setSecureContext(this.secureOptions(next));
      this.logger.log({ notAfter: next.serving.validTo, fingerprint256: next.serving.fingerprint256 }, 'serving certificate renewed');
    }
  }

  private load(now = Date.now()): Promise<TlsMaterial> {
    const t = this.config.tls;
    if (t.certFile && t.keyFile) return Promise.resolve(configuredMaterial(t.certFile, t.keyFile));
    return generatedMaterial(t.dir, servingNames(t.publicHost), now);
  }

  private secureOptions(m: TlsMaterial): tls.SecureContextOptions {
    return { key: m.key, cert: m.cert };
  }
}
