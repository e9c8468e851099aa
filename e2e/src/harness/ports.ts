import net from 'node:net';

/**
 * A TCP port that was free a moment ago: the kernel picks one for a listener
 * on port 0 (all addresses), which is closed again at once. Another process
 * could take it in between; the kernel hands out ports round-robin, so that
 * is rare, and a server that then fails to bind exits with a clear error.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, exclusive: true }, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error(`freePort: unexpected listener address ${String(address)}`));
        return;
      }
      server.close((error) => (error ? reject(error) : resolve(address.port)));
    });
  });
}
