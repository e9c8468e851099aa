// A real server process through the harness: it becomes healthy, serves the
// API, and keeps its data and sessions over a graceful restart and a crash,
// on embedded SQLite and on MariaDB.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  ApiClient,
  childEnv,
  describeOrSkip,
  expectError,
  freePort,
  makeTempDir,
  registerCleanup,
  removeDir,
  REPO_ROOT,
  requireMysql,
  signupUser,
  startServer,
  waitFor,
} from './harness';

describe.each([
  { database: 'sqlite' as const, skip: null },
  { database: 'mysql' as const, skip: requireMysql() },
])('server lifecycle ($database)', ({ database, skip }) => {
  describeOrSkip(skip)('a real server process', () => {
    it('is healthy, and keeps users, projects and sessions over a restart and a crash', async () => {
      const server = await startServer({ database });
      const health = await new ApiClient(server.url).request('GET', '/api/health');
      expect(health).toMatchObject({ status: 200, body: { status: 'ok', database: 'up' } });

      const owner = await signupUser(server.url, 'owner');
      const project = await owner.api.createProject({ name: 'Survivor' });

      await server.restart();
      expect(await owner.api.listProjects()).toEqual([expect.objectContaining({ id: project.id, name: 'Survivor' })]);

      await server.kill();
      await server.restart();
      expect((await owner.api.me()).email).toBe(owner.email);
      expect((await new ApiClient(server.url).login(owner)).user.id).toBe(owner.user.id);

      expectError(await new ApiClient(server.url).request('GET', '/api/projects'), 401, 'unauthenticated');
      await server.dispose();
    });
  });
});

/**
 * `npm start` never leaves its server behind: whether a supervisor kills the
 * whole process group or only the parent dies (SIGKILL, no chance to clean
 * up), the server goes down and the port is free again within seconds.
 * Runs the real `npm start` (scripts/start.mjs), which finds everything built.
 */
describe('npm start', () => {
  const npmStart = async () => {
    const port = await freePort();
    const dataDir = await makeTempDir('kapitan-e2e-start-');
    const bin = path.join(REPO_ROOT, 'node_modules/.bin');
    // Its own process group, as a terminal or a supervisor would start it.
    const npm = spawn('npm', ['start'], {
      cwd: REPO_ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: childEnv({ PORT: String(port), HOST: '127.0.0.1', KAPITAN_DATA_DIR: dataDir, LOG_LEVEL: 'warn', PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}` }),
    });
    let output = '';
    npm.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    npm.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    const release = async () => {
      try {
        process.kill(-npm.pid!, 'SIGKILL');
      } catch {
        // already gone: what the test wants
      }
      await removeDir(dataDir);
    };
    const unregister = registerCleanup(`npm start on ${port}`, release);
    const cleanup = async () => {
      unregister();
      await release();
    };
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${url}/api/health`).catch(() => null))?.status === 200, {
      timeoutMs: 120_000,
      message: `npm start to serve ${url} (output: ${output.slice(-2000)})`,
    });
    return { npm, port, url, cleanup, output: () => output };
  };

  const portIsFree = (port: number) =>
    new Promise<boolean>((resolve) => {
      const probe = net.createServer();
      probe.once('error', () => resolve(false));
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
    });

  const parentOf = (pid: number): number => {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  };

  /** The pid of the process whose parent is `parentPid` and whose command line mentions `match` (Linux /proc). */
  const childOf = (parentPid: number, match: string): number | undefined => {
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
        if (ppid === parentPid && cmdline.includes(match)) return Number(entry);
      } catch {
        // gone meanwhile
      }
    }
    return undefined;
  };
  /** Follows parent → child links from `pid` down to the process running `match`. */
  const descendant = (pid: number, match: string): number | undefined => {
    const direct = childOf(pid, match);
    if (direct !== undefined) return direct;
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) {
          const found = descendant(Number(entry), match);
          if (found !== undefined) return found;
        }
      } catch {
        // gone meanwhile
      }
    }
    return undefined;
  };

  const expectPortFreed = async (port: number, what: string) => {
    await waitFor(() => portIsFree(port), { timeoutMs: 10_000, message: `port ${port} to be free after ${what}` });
  };

  it('SIGKILL of the whole process group → the port is free within seconds', async () => {
    const s = await npmStart();
    process.kill(-s.npm.pid!, 'SIGKILL');
    await expectPortFreed(s.port, 'SIGKILL of the group');
    await s.cleanup();
  });

  it('SIGKILL of npm alone (the shell and start.mjs left behind) → the server stops, the port is free', async () => {
    const s = await npmStart();
    const serverPid = descendant(s.npm.pid!, 'server/dist/main.js');
    expect(serverPid).toBeDefined();
    process.kill(s.npm.pid!, 'SIGKILL');
    await expectPortFreed(s.port, 'SIGKILL of npm alone');
    await waitFor(() => !fs.existsSync(`/proc/${serverPid}`) || fs.readFileSync(`/proc/${serverPid}/stat`, 'utf8').includes(') Z '), {
      timeoutMs: 10_000,
      message: 'the server process to exit',
    });
    await s.cleanup();
  });

  it('SIGTERM to start.mjs alone (not its group) → the server stops, npm start exits', async () => {
    const s = await npmStart();
    const serverPid = descendant(s.npm.pid!, 'server/dist/main.js');
    expect(serverPid).toBeDefined();
    const exited = new Promise<number | null>((resolve) => s.npm.once('exit', (code) => resolve(code)));
    process.kill(parentOf(serverPid!), 'SIGTERM');
    await expectPortFreed(s.port, 'SIGTERM of start.mjs');
    await waitFor(async () => (await Promise.race([exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 100))])), {
      timeoutMs: 10_000,
      message: 'npm start to exit',
    });
    await s.cleanup();
  });

  it('SIGKILL of the server’s parent (start.mjs) alone → the server stops, the port is free', async () => {
    const s = await npmStart();
    const serverPid = descendant(s.npm.pid!, 'server/dist/main.js');
    expect(serverPid).toBeDefined();
    const starter = parentOf(serverPid!);
    expect(fs.readFileSync(`/proc/${starter}/cmdline`, 'utf8')).toContain('scripts/start.mjs');
    process.kill(starter!, 'SIGKILL');
    await expectPortFreed(s.port, 'SIGKILL of start.mjs');
    await waitFor(() => !fs.existsSync(`/proc/${serverPid}`) || fs.readFileSync(`/proc/${serverPid}/stat`, 'utf8').includes(') Z '), {
      timeoutMs: 10_000,
      message: 'the server process to exit',
    });
    await s.cleanup();
  });
});
