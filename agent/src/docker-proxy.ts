/**
 * A unix socket in front of the Docker engine's, for tests of an engine that
 * goes away and comes back without restarting the shared engine: `cut()`
 * drops every connection and removes the socket (as a stopping dockerd
 * does), `restore()` listens again.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';

export class DockerSocketProxy {
  private server: net.Server | null = null;
  private readonly conns = new Set<net.Socket>();

  constructor(
    readonly socketPath: string,
    private readonly upstream = '/var/run/docker.sock',
  ) {}

  get listening(): boolean {
    return this.server !== null;
  }

  async restore(): Promise<void> {
    if (this.server) return;
    fs.rmSync(this.socketPath, { force: true });
    const server = net.createServer((client) => {
      const upstream = net.connect(this.upstream);
      this.conns.add(client).add(upstream);
      const drop = (): void => {
        client.destroy();
        upstream.destroy();
        this.conns.delete(client);
        this.conns.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.socketPath, () => resolve()));
    this.server = server;
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const c of this.conns) c.destroy();
    this.conns.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(this.socketPath, { force: true });
  }
}
