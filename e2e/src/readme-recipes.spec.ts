/**
 * The README's operator recipes, run as written: each block after a
 * `<!-- recipe: NAME -->` marker is extracted from README.md and run by bash
 * against a real server (embedded SQLite) and a real agent, with only the
 * variables the README names (KAPITAN_URL, KAPITAN_TOKEN, PROJECT; REPO for
 * the checkout). A recipe that drifts from the API fails here.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildBusyboxImage, imageId, removeImages } from '@kapitan/agent/testing';
import type { CreatedApiToken, StoredFile } from '@kapitan/shared';
import { REPO_ROOT, requireDockerSync, startServer, type TestAgent, type TestServer } from './harness';
import { setupProject, startOnlineAgent, type TestProject } from './agents/fixtures';

function recipe(name: string): string {
  const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const m = new RegExp(`<!-- recipe: ${name} -->\\n\`\`\`sh\\n([\\s\\S]*?)\`\`\``).exec(readme);
  if (!m) throw new Error(`README.md has no recipe "${name}"`);
  return m[1];
}

function bash(script: string, cwd: string, env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('bash', ['-c', script], { cwd, env: { PATH: process.env.PATH!, HOME: cwd, ...env }, timeout: 180_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('README operator recipes (real server, SQLite, real agent)', () => {
  let server: TestServer;
  let p: TestProject;
  let agent: TestAgent;
  let env: Record<string, string>;
  let tmp: string;

  beforeAll(async () => {
    server = await startServer({ database: 'sqlite', env: { LOG_LEVEL: 'warn' } });
    p = await setupProject(server.url, 'recipes');
    agent = await startOnlineAgent(server.url, p);
    const token = (await p.api.request<CreatedApiToken>('POST', '/api/tokens', { body: { name: 'ci', projectId: p.projectId, role: 'operator' } })).body;
    env = { KAPITAN_URL: server.url, KAPITAN_TOKEN: token.token, PROJECT: p.projectId, REPO: REPO_ROOT };
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kapitan-recipes-'));
  });
  afterAll(async () => {
    await agent?.dispose();
    await server?.dispose();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const files = async (): Promise<StoredFile[]> => (await p.api.request<StoredFile[]>('GET', `/api/projects/${p.projectId}/files`)).body;

  it('cli: uploads a script and runs it on every machine', async () => {
    const r = await bash(recipe('cli'), tmp, env);
    expect(r).toMatchObject({ code: 0 });
    const script = fs.readFileSync(path.join(tmp, 'deploy.sh'));
    const sha = createHash('sha256').update(script).digest('hex');
    expect(r.stdout).toContain(`${sha}\n`);
    expect(r.stdout).toContain('deploying v1.4 on ');
    expect((await files()).find((f) => f.sha256 === sha)).toMatchObject({ kind: 'script', name: 'deploy.sh' });
  });

  describe('with Docker', () => {
    let reason: string | null;
    beforeAll(async () => {
      reason = requireDockerSync();
    });

    it('upload-image, distribute-image: a docker save tarball goes up in chunks, then into the agent’s engine', async () => {
      if (reason) return;
      const tag = `kapitan-test/recipe:${process.pid}`;
      await buildBusyboxImage(tag, 'recipe');
      try {
        const r = await bash(recipe('upload-image'), tmp, { ...env, IMAGE: tag });
        expect(r).toMatchObject({ code: 0 });
        const id = /uploaded app\.tar as file (\S+)/.exec(r.stdout)?.[1];
        const sha = createHash('sha256').update(fs.readFileSync(path.join(tmp, 'app.tar'))).digest('hex');
        expect((await files()).find((f) => f.id === id)).toMatchObject({ kind: 'image', name: 'app.tar', sha256: sha });
        expect(fs.readdirSync(tmp).filter((f) => f.includes('.part.'))).toEqual([]);

        // distribute-image: the engine loses the image, the recipe brings it back through the agent.
        const built = await imageId(tag);
        await removeImages(tag);
        expect(await imageId(tag)).toBeNull();
        const d = await bash(recipe('distribute-image'), tmp, { ...env, FILE: id! });
        expect({ code: d.code, stdout: d.stdout, stderr: d.stderr }).toEqual({ code: 0, stdout: expect.any(String), stderr: '' });
        expect(d.stdout).toContain(`${agent.machineId}: succeeded ${built}`);
        expect(await imageId(tag)).toBe(built);
      } finally {
        await removeImages(tag);
      }
    });
  });
});
