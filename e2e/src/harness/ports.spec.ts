import net from 'node:net';
import { freePort } from './ports';

const listen = (port: number, host?: string): Promise<net.Server> =>
  new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ port, host, exclusive: true }, () => resolve(server));
  });
const close = (server: net.Server): Promise<void> => new Promise((resolve) => server.close(() => resolve()));

describe('freePort', () => {
  it('returns a port another listener can bind at once, on loopback and on all addresses', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(1024);
    expect(port).toBeLessThan(65536);
    const loopback = await listen(port, '127.0.0.1');
    await close(loopback);
    const any = await listen(port);
    await close(any);
  });

  it('does not hand out a port that is taken', async () => {
    const taken = await listen(0);
    const takenPort = (taken.address() as net.AddressInfo).port;
    const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
    expect(ports).not.toContain(takenPort);
    await close(taken);
  });
});
