import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Request, Response } from 'express';
import { watchClient } from './client-watch';

/** A real HTTP server whose handler watches its client, as the upload routes do. */
async function serve(handler: (req: Request, res: Response, gone: () => boolean) => void): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => handler(req as Request, res as Response, watchClient(req as Request, res as Response)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('watchClient', () => {
  it('leaves nothing on a kept-alive connection: 50 requests on one socket, its close listeners do not grow', async () => {
    const counts: number[] = [];
    const sockets = new Set<unknown>();
    const s = await serve((req, res) => {
      sockets.add(req.socket);
      counts.push(req.socket.listenerCount('close'));
      res.end('ok');
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 50; i++) {
        await new Promise<void>((resolve, reject) => {
          http.get(s.url, { agent }, (r) => r.resume().on('end', resolve)).on('error', reject);
        });
      }
    } finally {
      agent.destroy();
      await s.close();
    }
    expect(sockets.size).toBe(1); // really one connection, or the test proves nothing
    expect(counts).toHaveLength(50);
    expect(Math.max(...counts)).toBe(counts[0]);
  });

  it('reports a client that hangs up before its answer, and not one that was answered', async () => {
    let seen: (v: { before: boolean; after: boolean }) => void;
    const result = new Promise<{ before: boolean; after: boolean }>((r) => (seen = r));
    const s = await serve((req, _res, gone) => {
      const before = gone();
      req.socket.once('close', () => setImmediate(() => seen({ before, after: gone() })));
      req.socket.destroy(); // the client hanging up, as the server sees it
    });
    let answeredGone: (v: boolean) => void;
    const afterAnswer = new Promise<boolean>((r) => (answeredGone = r));
    const answered = await serve((_req, res, gone) => {
      res.once('close', () => answeredGone(gone()));
      res.end('ok');
    });
    try {
      http.get(s.url).on('error', () => undefined);
      expect(await result).toEqual({ before: false, after: true });
      const status = await new Promise<number>((resolve, reject) => http.get(answered.url, (r) => r.resume().on('end', () => resolve(r.statusCode!))).on('error', reject));
      expect(status).toBe(200);
      expect(await afterAnswer).toBe(false);
    } finally {
      await s.close();
      await answered.close();
    }
  });
});
