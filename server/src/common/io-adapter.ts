import { INestApplicationContext, Logger } from '@nestjs/common';
import { IoAdapter } from '@nestjs/platform-socket.io';
import { createAdapter } from '@socket.io/redis-streams-adapter';
import { LIMITS } from '@kapitan/shared';
import { createClient } from 'redis';
import type { Server, ServerOptions } from 'socket.io';
import type { AppConfig } from '../config/config';

/**
 * One socket.io server for both namespaces. With REDIS_URL the rooms span
 * every node (Redis Streams adapter), so an emit to `machine:<id>` reaches
 * the node that holds the agent's socket.
 */
export class KapitanIoAdapter extends IoAdapter {
  private adapterFactory: ReturnType<typeof createAdapter> | undefined;
  private redis: ReturnType<typeof createClient> | undefined;

  constructor(
    app: INestApplicationContext,
    private readonly config: AppConfig,
  ) {
    super(app);
  }

  async connectRedis(): Promise<void> {
    if (!this.config.redisUrl) return;
    this.redis = createClient({ url: this.config.redisUrl });
    this.redis.on('error', (err: Error) => new Logger('Redis').error(err.message));
    await this.redis.connect();
    this.adapterFactory = createAdapter(this.redis);
  }

  override createIOServer(port: number, options?: ServerOptions): Server {
    const server: Server = super.createIOServer(port, {
      ...options,
      // Bigger messages drop the socket (ADVERSARIAL 14); files travel by HTTP.
      maxHttpBufferSize: LIMITS.socketMessageMaxBytes,
      pingInterval: 10_000,
      pingTimeout: 20_000,
      // The dashboard is served from the same origin; agents are not browsers.
      cors: { origin: false },
    });
    if (this.adapterFactory) server.adapter(this.adapterFactory);
    return server;
  }

  override async close(server: Server): Promise<void> {
    await super.close(server);
    await this.redis?.quit().catch(() => undefined);
  }
}
