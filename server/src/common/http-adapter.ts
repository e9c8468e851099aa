import type { NestApplicationOptions } from '@nestjs/common';
import { ExpressAdapter } from '@nestjs/platform-express';
import http from 'node:http';
import https from 'node:https';

export interface HttpTimeouts {
  /** A client must finish its request headers within this long, or the connection is cut. */
  headersTimeoutMs: number;
}

/**
 * Nest's Express adapter, with a server whose slow-header clients are cut
 * in seconds. Node's defaults (60 s for headers, checked every 30 s) let a
 * slowloris client hold a connection for about 80 s; the check interval is
 * a constructor option only, hence this subclass. The whole-request timeout
 * stays off (0): uploads stream large bodies for as long as they need.
 */
export class KapitanExpressAdapter extends ExpressAdapter {
  constructor(private readonly timeouts: HttpTimeouts) {
    super();
  }

  override initHttpServer(options: NestApplicationOptions): void {
    const serverOptions: http.ServerOptions = {
      headersTimeout: this.timeouts.headersTimeoutMs,
      requestTimeout: 0,
      connectionsCheckingInterval: Math.min(1000, this.timeouts.headersTimeoutMs),
    };
    const server = options?.httpsOptions
      ? https.createServer({ ...options.httpsOptions, ...serverOptions }, this.getInstance())
      : http.createServer(serverOptions, this.getInstance());
    this.setHttpServer(server);
  }
}
