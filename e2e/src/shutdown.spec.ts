/**
 * A graceful stop is bounded (KAPITAN_SHUTDOWN_TIMEOUT_SECONDS): a request
 * that never ends (here an upload whose body stops arriving) cannot hold a
 * node that was told to stop; it exits 1 at the deadline, saying why. Without
 * one, the same node stops at once with 0 (README "Running more than one node").
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { signupUser, startServer, waitFor } from './harness';

describe('bounded graceful stop (real server process)', () => {
  test('an upload that never finishes: SIGTERM → exit 1 at KAPITAN_SHUTDOWN_TIMEOUT_SECONDS, with the reason', async () => {
    const server = await startServer({ env: { KAPITAN_SHUTDOWN_TIMEOUT_SECONDS: '1' } });
    try {
      const owner = await signupUser(server.url, 'shutdown');
      const project = await owner.api.createProject({ name: 'shutdown' });
      const req = http.request(`${server.url}/api/projects/${project.id}/files?kind=file&name=stuck.bin`, {
        method: 'POST',
        headers: { authorization: `Bearer ${owner.accessToken}`, 'content-type': 'application/octet-stream', 'content-length': 10 * 1024 * 1024 },
      });
      req.on('error', () => undefined); // cut by the exit
      req.write(Buffer.alloc(64 * 1024));
      // The server is receiving it (its first bytes are in the store's tmp/) before the signal.
      const tmp = path.join(server.dataDir, 'files', 'tmp');
      await waitFor(() => fs.existsSync(tmp) && fs.readdirSync(tmp).length > 0, { timeoutMs: 15_000, message: 'the upload under way' });
      const started = Date.now();
      const exit = await server.stop('SIGTERM');
      expect(exit).toEqual({ code: 1, signal: null });
      expect(Date.now() - started).toBeLessThan(9_000); // well before the harness's own SIGKILL at 10 s
      expect(server.logs()).toMatch(/did not stop within 1000 ms of SIGTERM \(KAPITAN_SHUTDOWN_TIMEOUT_SECONDS\): exiting anyway/);
      req.destroy();
    } finally {
      await server.dispose();
    }
  });

  test('nothing under way: SIGTERM → drained and exit 0 at once', async () => {
    const server = await startServer({ env: { KAPITAN_SHUTDOWN_TIMEOUT_SECONDS: '5' } });
    try {
      const exit = await server.stop('SIGTERM');
      expect(exit).toEqual({ code: 0, signal: null });
      expect(server.logs()).toMatch(/node drained/);
      expect(server.logs()).toMatch(/Kapitan stopped \(SIGTERM\)/);
    } finally {
      await server.dispose();
    }
  });
});
