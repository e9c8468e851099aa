import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { requireHaproxy, startBalancer, type TestBalancer } from './balancer';
import { describeOrSkip } from './requirements';

/** A stand-in backend: /api/health/live answers `health()`'s status, anything else says which backend it is. */
async function backend(name: string, health: () => number): Promise<{ port: number; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url === '/api/health/live') {
      res.statusCode = health();
      return res.end('{}');
    }
    res.end(name);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describeOrSkip(requireHaproxy())('startBalancer (real HAProxy)', () => {
  let lb: TestBalancer | undefined;
  afterEach(async () => lb?.dispose());

  it('balances over healthy backends, follows their health checks, and steers with the runtime API', async () => {
    let aHealth = 200;
    let bHealth = 200;
    const a = await backend('a', () => aHealth);
    const b = await backend('b', () => bHealth);
    try {
      lb = await startBalancer([
        { name: 'a', port: a.port },
        { name: 'b', port: b.port },
      ]);
      expect(await lb.status()).toEqual({ a: 'UP', b: 'UP' });
      const answers = new Set<string>();
      for (let i = 0; i < 4; i++) answers.add(await (await fetch(`${lb.url}/x`)).text());
      expect([...answers].sort()).toEqual(['a', 'b']); // round robin

      // A backend answering 503 (a node stopping) is taken out; everything goes to the other.
      bHealth = 503;
      await lb.waitFor('b', 'DOWN');
      for (let i = 0; i < 3; i++) expect(await (await fetch(`${lb.url}/x`)).text()).toBe('a');
      bHealth = 200;
      await lb.waitFor('b', 'UP');

      // drain: no new traffic to a, though it stays healthy.
      await lb.setState('a', 'drain');
      await lb.waitFor('a', 'DRAIN');
      for (let i = 0; i < 3; i++) expect(await (await fetch(`${lb.url}/x`)).text()).toBe('b');
      await expect(lb.setState('nosuch', 'drain')).rejects.toThrow(/refused/);
      await lb.setState('a', 'ready');
      await lb.waitFor('a', 'UP');

      // Every node failing its check (too busy to answer it in time): the last ones standing still
      // serve, unchecked, instead of HAProxy refusing everyone.
      bHealth = 503;
      await lb.waitFor('b', 'DOWN');
      aHealth = 503;
      await lb.waitFor('a', 'DOWN');
      const lastResort = new Set<string>();
      for (let i = 0; i < 4; i++) {
        const r = await fetch(`${lb.url}/x`);
        expect(r.status).toBe(200);
        lastResort.add(await r.text());
      }
      expect([...lastResort].sort()).toEqual(['a', 'b']);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
