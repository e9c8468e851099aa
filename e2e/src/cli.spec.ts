/**
 * The operator CLI (`kapitan`, shared/src/cli) as a real process against a
 * real server (embedded SQLite) and a real agent, authenticated only by API
 * tokens, as a CI pipeline would use it:
 *
 * - upload: a 40 MiB file goes up in chunks, and when the connection of one
 *   chunk is cut mid-body (by a proxy in between) the CLI asks the server
 *   where it stands and carries on; the stored sha256 is the file's;
 * - run: the output of the script reaches stdout whole, and the exit code
 *   says whether it succeeded on every machine;
 * - refusals: a viewer token cannot upload or run (403), a revoked token is
 *   401, bad usage is exit 2 with the reason, and none of them changes anything.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { CreatedApiToken, StoredFile } from '@kapitan/shared';
import { REPO_ROOT, startServer, type TestAgent, type TestServer } from './harness';
import { setupProject, startOnlineAgent, type TestProject } from './agents/fixtures';

const CLI = path.join(REPO_ROOT, 'shared/dist/cli/kapitan.js');
const MiB = 1024 * 1024;

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to its end (or fails the test at the deadline). */
function kapitan(args: string[], env: Record<string, string | undefined>, timeoutMs = 120_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, HOME: os.tmpdir(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`kapitan ${args.join(' ')} did not finish in ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * A pass-through proxy that cuts the connection of the first chunk request
 * after `cutAfter` bytes of its body, as a flaky link or a restarting
 * balancer would. Counts the chunk requests it saw.
 */
async function cuttingProxy(target: string, cutAfter: number): Promise<{ url: string; puts: number; cuts: number; close(): Promise<void> }> {
  const state = { puts: 0, cuts: 0 };
  const upstream = new URL(target);
  const server = http.createServer((req, res) => {
    const isChunk = req.method === 'PUT' && /^\/api\/uploads\//.test(req.url ?? '');
    if (isChunk) state.puts++;
    const cut = isChunk && state.cuts === 0 && state.puts === 2;
    const out = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    out.on('error', () => res.destroy());
    if (!cut) {
      req.pipe(out);
      return;
    }
    let seen = 0;
    req.on('data', (d: Buffer) => {
      seen += d.length;
      if (seen < cutAfter) {
        out.write(d);
        return;
      }
      state.cuts++;
      req.socket.destroy();
      out.destroy();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get puts() {
      return state.puts;
    },
    get cuts() {
      return state.cuts;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('operator CLI (real server, SQLite, real agent)', () => {
  let server: TestServer;
  let p: TestProject;
  let agent: TestAgent;
  let tmp: string;
  let operator: CreatedApiToken;
  let viewer: CreatedApiToken;

  const token = async (role: 'operator' | 'viewer', name: string): Promise<CreatedApiToken> =>
    (await p.api.request<CreatedApiToken>('POST', '/api/tokens', { body: { name, projectId: p.projectId, role } })).body;
  const files = async (): Promise<StoredFile[]> => (await p.api.request<StoredFile[]>('GET', `/api/projects/${p.projectId}/files`)).body;

  beforeAll(async () => {
    server = await startServer({ database: 'sqlite', env: { LOG_LEVEL: 'warn' } });
    p = await setupProject(server.url, 'cli');
    agent = await startOnlineAgent(server.url, p);
    operator = await token('operator', 'ci pipeline');
    viewer = await token('viewer', 'dashboard screen');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kapitan-cli-'));
  });
  afterAll(async () => {
    await agent?.dispose();
    await server?.dispose();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('uploads in chunks and resumes after a chunk connection is cut; the stored hash is the file’s', async () => {
    const file = path.join(tmp, 'release.bin');
    const bytes = randomBytes(40 * MiB);
    fs.writeFileSync(file, bytes);
    const proxy = await cuttingProxy(server.url, 5 * MiB);
    try {
      const r = await kapitan(['upload', file, '--project', p.projectId, '--kind', 'file', '--name', 'release-1.bin'], { KAPITAN_URL: proxy.url, KAPITAN_TOKEN: operator.token });
      expect(r).toMatchObject({ code: 0 });
      const stored = JSON.parse(r.stdout) as StoredFile;
      expect(stored).toMatchObject({ name: 'release-1.bin', kind: 'file', size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });
      expect(proxy.cuts).toBe(1);
      // 40 MiB in chunks of at most 16 MiB is three chunks, plus the one sent again after the cut.
      expect(proxy.puts).toBe(4);
      // Not a TTY: progress is a line per tenth on stderr, ending with the digest.
      expect(r.stderr).toContain('100%');
      expect(r.stderr).toContain(`sha256 ${stored.sha256}`);
      expect((await files()).map((f) => f.id)).toContain(stored.id);
    } finally {
      await proxy.close();
    }
  });

  it('runs a script file on the targets, prints its output and exits 0 only when it succeeded', async () => {
    const script = path.join(tmp, 'deploy.sh');
    fs.writeFileSync(script, '#!/bin/sh\nfor i in 1 2 3; do echo "step $i"; done\necho "warn: $1" >&2\n');
    const env = { KAPITAN_URL: server.url, KAPITAN_TOKEN: operator.token };
    const ok = await kapitan(['run', '--project', p.projectId, '--script-file', script, '--machine', agent.machineId, '--arg', 'careful'], env);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toBe('step 1\nstep 2\nstep 3\n');
    expect(ok.stderr).toContain('warn: careful');
    expect(ok.stderr).toMatch(/succeeded \(exit 0\)/);

    const failed = await kapitan(['run', '--project', p.projectId, '--script', 'echo about to fail; exit 7', '--all'], env);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toBe('about to fail\n');
    expect(failed.stderr).toMatch(/failed \(exit 7\)/);
  });

  it('deploys a local file to a path on the machine and reports it per machine', async () => {
    const conf = path.join(tmp, 'app.conf');
    fs.writeFileSync(conf, 'listen = 8080\n');
    const target = path.join(agent.stateDir, 'deploys', 'app.conf');
    const env = { KAPITAN_URL: server.url, KAPITAN_TOKEN: operator.token };
    const r = await kapitan(['deploy', conf, '--project', p.projectId, '--path', target, '--mode', '0640', '--machine', agent.machineId], env);
    expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: expect.stringMatching(/: succeeded/) });
    expect(JSON.parse(r.stdout)).toMatchObject({ kind: 'deploy', path: target, machines: [{ machineId: agent.machineId, status: 'succeeded' }] });
    expect(fs.readFileSync(target, 'utf8')).toBe('listen = 8080\n');
    expect(fs.statSync(target).mode & 0o777).toBe(0o640);

    // Outside what the agent may write: refused on the agent, exit 1 with its reason.
    const outside = await kapitan(['deploy', conf, '--project', p.projectId, '--path', path.join(tmp, 'elsewhere.conf'), '--all'], env);
    expect(outside.code).toBe(1);
    expect(outside.stderr).toMatch(/: failed (\(moved [^)]*\) )?— refused: .* is outside the directories/);
    expect(fs.existsSync(path.join(tmp, 'elsewhere.conf'))).toBe(false);
  });

  it('refuses what the token may not do, and bad usage, changing nothing', async () => {
    const small = path.join(tmp, 'small.txt');
    fs.writeFileSync(small, 'hello\n');
    const before = (await files()).length;
    const asViewer = { KAPITAN_URL: server.url, KAPITAN_TOKEN: viewer.token };

    const upload = await kapitan(['upload', small, '--project', p.projectId, '--kind', 'file'], asViewer);
    expect(upload.code).toBe(1);
    expect(upload.stderr).toMatch(/403 forbidden/);
    const run = await kapitan(['run', '--project', p.projectId, '--script', 'echo no', '--all'], asViewer);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/403 forbidden/);

    const revoked = await token('operator', 'leaked');
    expect((await p.api.request('DELETE', `/api/tokens/${revoked.id}`)).status).toBe(204);
    const gone = await kapitan(['upload', small, '--project', p.projectId, '--kind', 'file'], { KAPITAN_URL: server.url, KAPITAN_TOKEN: revoked.token });
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/401 unauthenticated/);

    const usage = [
      { args: ['upload', small, '--project', p.projectId], why: /--kind must be script, file or image/ },
      { args: ['upload', '--project', p.projectId, '--kind', 'file'], why: /exactly one path/ },
      { args: ['run', '--project', p.projectId, '--script', 'true'], why: /name the targets/ },
      { args: ['run', '--project', p.projectId, '--all'], why: /name the script once/ },
      { args: ['run', '--project', p.projectId, '--all', '--script', 'true', '--env', 'NOEQUALS'], why: /--env takes NAME=value/ },
      { args: ['frobnicate'], why: /unknown command "frobnicate"/ },
      { args: ['deploy', small, '--project', p.projectId, '--all'], why: /--path is required/ },
      { args: ['distribute', small, '--project', p.projectId, '--all', '--path', '/x'], why: /--path, --mode and --owner are for deploy/ },
    ];
    for (const u of usage) {
      const r = await kapitan(u.args, { KAPITAN_URL: server.url, KAPITAN_TOKEN: operator.token });
      expect({ args: u.args, code: r.code }).toEqual({ args: u.args, code: 2 });
      expect(r.stderr).toMatch(u.why);
    }
    const noToken = await kapitan(['upload', small, '--project', p.projectId, '--kind', 'file'], { KAPITAN_URL: server.url });
    expect(noToken).toMatchObject({ code: 2 });
    expect(noToken.stderr).toMatch(/no API token/);
    expect((await files()).length).toBe(before);
  });
});
