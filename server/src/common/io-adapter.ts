import { INestApplicationContext, Logger } from '@nestjs/common';
import { IoAdapter } from '@nestjs/platform-socket.io';
import type { MessageMappingProperties } from '@nestjs/websockets';
import type { createAdapter } from '@socket.io/redis-streams-adapter';
import { LIMITS } from '@kapitan/shared';
import type { createClient } from 'redis';
import { isObservable, type Observable } from 'rxjs';
import type { Server, ServerOptions, Socket } from 'socket.io';
import type { AppConfig } from '../config/config';
import { handshakeError } from './handshake-error';

/**
 * One socket.io server for both namespaces. With REDIS_URL the rooms span
 * every node (Redis Streams adapter), so an emit to `machine:<id>` reaches
 * the node that holds the agent's socket.
 */
export class KapitanIoAdapter extends IoAdapter {
  private adapterFactory: ReturnType<typeof createAdapter> | undefined;
  private redis: ReturnType<typeof createClient> | undefined;
  private readonly ioLogger = new Logger('Socket');

  constructor(
    app: INestApplicationContext,
    private readonly config: AppConfig,
  ) {
    super(app);
  }

  async connectRedis(): Promise<void> {
    if (!this.config.redisUrl) return;
    // Loaded only with REDIS_URL: a single node does not pay for the client at every start.
    const [{ createClient }, { createAdapter }] = await Promise.all([import('redis'), import('@socket.io/redis-streams-adapter')]);
    this.redis = createClient({ url: this.config.redisUrl });
    this.redis.on('error', (err: Error) => new Logger('Redis').error(err.message));
    await this.redis.connect();
    this.adapterFactory = createAdapter(this.redis);
  }

  override createIOServer(port: number, options?: ServerOptions): Server {
    const server: Server = super.createIOServer(port, {
      ...options,
      // Bigger messages drop the socket (threat model T14); files travel by HTTP.
      maxHttpBufferSize: LIMITS.socketMessageMaxBytes,
      pingInterval: 10_000,
      pingTimeout: 20_000,
      // The dashboard is served from the same origin; agents are not browsers.
      cors: { origin: false },
    });
    if (this.adapterFactory) server.adapter(this.adapterFactory);
    // Only /agent and /live serve anyone; the default namespace would accept any client and hold it.
    server.of('/').use((_socket, next) => next(handshakeError('not_found', 'no such namespace; use /agent or /live')));
    return server;
  }

  /**
   * For gateways that declare `@SubscribeMessage` handlers (today neither
   * does: `/agent` and `/live` bind one `onAny` listener per socket and
   * dispatch through their channel's registry, which is leaner still).
   * One plain listener per event and socket. Nest's default builds an RxJS
   * pipeline (fromEvent, mergeMap, takeUntil and their subscribers) per
   * event and socket and keeps it for the socket's life: with five agent
   * events that was about two thirds of the server's heap per connected
   * agent. Same contract: each message is handled independently; a result
   * (value, promise or observable, via Nest's `transform`) answers the ack,
   * or is emitted when it is `{ event, data }`; nothing is handled after the
   * disconnect (socket.io delivers no event to a closed socket and drops
   * acks on it).
   */
  override bindMessageHandlers(socket: Socket, handlers: MessageMappingProperties[], transform: (data: unknown) => Observable<unknown>): void {
    for (const { message, callback, isAckHandledManually } of handlers) {
      const respond = (response: unknown, ack: unknown): void => {
        if (response === null || response === undefined) return;
        const r = response as { event?: string; data?: unknown };
        if (r.event) socket.emit(r.event, r.data);
        else if (!isAckHandledManually && typeof ack === 'function') (ack as (a: unknown) => void)(response);
      };
      const failed = (err: unknown): void => this.ioLogger.error({ err: String(err), event: message }, 'socket message handler failed');
      socket.on(message as string, (...args: unknown[]) => {
        // As fromEvent hands it over: the lone argument, or all of them as an array.
        const { data, ack } = this.mapPayload(args.length === 1 ? args[0] : args);
        const result: unknown = callback(data, ack);
        // The usual case, a promise of a plain value, without an RxJS pipeline per message.
        if (result instanceof Promise) {
          result.then((value: unknown) => (isObservable(value) ? transform(value).subscribe({ next: (v) => respond(v, ack), error: failed }) : respond(value, ack)), failed);
        } else {
          transform(result).subscribe({ next: (v) => respond(v, ack), error: failed });
        }
      });
    }
  }

  override async close(server: Server): Promise<void> {
    await super.close(server);
    await this.redis?.quit().catch(() => undefined);
  }
}
