// The harness's server lifecycle, exercised on a stand-in process
// (fixtures/health-server.mjs) that obeys the server's environment contract.
import path from 'node:path';
import { startServer } from './server';

const fixture = path.join(__dirname, 'fixtures/health-server.mjs');
const fixtureState = async (url: string) =>
  (await (await fetch(`${url}/api/fixture`)).json()) as { starts: number; pid: number; env: Record<string, string | null> };

describe('startServer', () => {
  it('starts on a free port with a fresh data dir, restarts on the same port and data, stops', async () => {
    const server = await startServer({ entry: fixture, env: { JWT_SECRET: 'shared-by-all-nodes' } });
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
    const first = await fixtureState(server.url);
    expect(first.starts).toBe(1);
    expect(first.pid).toBe(server.process.pid);
    expect(first.env.DATABASE_URL).toBeNull(); // sqlite by default
    expect(first.env.JWT_SECRET).toBe('shared-by-all-nodes');

    await server.restart();
    const second = await fixtureState(server.url);
    expect(second.starts).toBe(2); // same data dir
    expect(second.pid).not.toBe(first.pid);
    expect(second.env.JWT_SECRET).toBe('shared-by-all-nodes'); // same environment

    await server.kill();
    await expect(fetch(`${server.url}/api/health`)).rejects.toThrow();
    await server.restart(); // after a crash too
    expect((await fixtureState(server.url)).starts).toBe(3);
    expect(server.logs()).toMatch(/listening on[\s\S]*SIGKILL[\s\S]*listening on/);

    await expect(server.stop()).resolves.toEqual({ code: 0, signal: null });
    await server.dispose();
  });

  it('fails fast with the output tail when the server exits early', async () => {
    const started = Date.now();
    await expect(startServer({ entry: fixture, env: { FIXTURE_MODE: 'crash' } })).rejects.toThrow(
      /exited \(code 3, signal null\) before .*\/api\/health answered 200[\s\S]*DATABASE_URL points nowhere/,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('fails at the deadline with the last answer when health never turns 200', async () => {
    await expect(startServer({ entry: fixture, env: { FIXTURE_MODE: 'never-ready' }, startTimeoutMs: 1_500 })).rejects.toThrow(
      /did not answer 200 .* within 1500 ms \(last: HTTP 503/,
    );
  });

  it('says to build when the entry is missing', async () => {
    await expect(startServer({ entry: '/nonexistent/main.js' })).rejects.toThrow(/does not exist; build first/);
  });
});
