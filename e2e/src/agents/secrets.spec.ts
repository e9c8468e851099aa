/**
 * Project secrets in runs, real server (embedded SQLite) and real agent
 * process: a script that prints its secret — plainly, cut across two writes
 * with a pause between them, and in base64 — leaves only `***` in the
 * stored log, in the live output a dashboard socket receives, and in the
 * agent's disk spool while the server is down. The API shows the names, to
 * a viewer too, never the value (threat model T48).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LiveClientEvents, LiveServerEvents, type Execution, type ExecutionChunksAck, type LiveOutputEvent, type OutputChunk } from '@kapitan/shared';
import { collectSocketEvents, connectLive, emitWithAck, expectError, startServer, waitFor, type TestAgent, type TestServer, type TestUser, signupUser } from '../harness';
import { setupProject, startOnlineAgent, waitForFinal, type TestProject } from './fixtures';

const VALUE = 'e2e-S3cret-4f9a0c2d71';
const B64 = Buffer.from(VALUE).toString('base64');
/** Forms of the value that must appear nowhere: itself, its two halves as written, its base64. */
const LEAKS = [VALUE, VALUE.slice(0, 8), VALUE.slice(8), B64.slice(0, 20)];

/** Every file under `dir` (recursively) as text. */
function filesUnder(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir, { recursive: true }) as string[];
  } catch {
    return [];
  }
  return names.flatMap((n) => {
    try {
      const file = path.join(dir, n);
      return fs.statSync(file).isFile() ? [fs.readFileSync(file, 'utf8')] : [];
    } catch {
      return []; // deleted meanwhile
    }
  });
}

/** The script: waits for `go`, prints the secret three ways, then a marker; exits once `done` exists (if given). */
function leakyScript(go: string, done?: string): string {
  return [
    '#!/bin/bash',
    `while [ ! -e '${go}' ]; do sleep 0.02; done`,
    'echo "plain $DB_PASSWORD"',
    // two writes 300 ms apart: the agent reads, and its chunker releases, two pieces
    'printf "split %s" "${DB_PASSWORD:0:8}"; sleep 0.3; printf "%s end\\n" "${DB_PASSWORD:8}"',
    'printf "%s" "$DB_PASSWORD" | base64',
    'echo "err $DB_PASSWORD" >&2',
    'echo marker-all-written',
    ...(done ? [`while [ ! -e '${done}' ]; do sleep 0.02; done`] : []),
  ].join('\n');
}

const EXPECTED_LOG = ['plain ***', 'split *** end', '***', 'err ***', 'marker-all-written', ''];

describe('secrets in runs (SQLite, real agent)', () => {
  let server: TestServer;
  let p: TestProject;
  let viewer: TestUser;
  let agent: TestAgent;
  let tmp: string;

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kapitan-e2e-secrets-'));
    server = await startServer({ database: 'sqlite' });
    p = await setupProject(server.url, 'secret-runs');
    viewer = await signupUser(server.url, 'secret-viewer');
    await p.api.addMember(p.projectId, { email: viewer.email, role: 'viewer' });
    const created = await p.api.request('POST', `/api/projects/${p.projectId}/secrets`, { body: { name: 'DB_PASSWORD', value: VALUE } });
    expect(created.status).toBe(201);
    agent = await startOnlineAgent(server.url, p);
  });
  afterAll(async () => {
    await agent?.dispose();
    await server?.dispose();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const run = async (script: string): Promise<string> =>
    (await p.api.createExecution(p.projectId, { script, secrets: ['DB_PASSWORD'], targets: { machineIds: [agent.machineId] } })).executions[0].id;

  test('a run echoing its secret: the stored log and the live output at a viewer’s dashboard socket hold only ***; the API shows the name only', async () => {
    const go = path.join(tmp, 'go-1');
    const id = await run(leakyScript(go));
    const live = await connectLive(server.url, viewer.accessToken);
    const forwarded = collectSocketEvents(live, LiveServerEvents.output);
    const ack = (await emitWithAck(live, LiveClientEvents.subscribeExecution, { executionId: id, fromSeq: 0 })) as ExecutionChunksAck;
    expect(ack.ok).toBe(true);
    fs.writeFileSync(go, '');
    const e = await waitForFinal(p, id);
    expect(e).toMatchObject({ status: 'succeeded', exitCode: 0, secrets: ['DB_PASSWORD'] });

    const text = await p.api.getExecutionLogText(id);
    expect(text.split('\n').sort()).toEqual([...EXPECTED_LOG].sort()); // stderr may interleave anywhere between lines
    const liveText = () =>
      (forwarded.events as LiveOutputEvent[]).filter((ev) => ev.executionId === id).flatMap((ev) => ev.chunks.map((c: OutputChunk) => c.data)).join('');
    await waitFor(() => liveText().includes('marker-all-written'), { timeoutMs: 10_000, intervalMs: 20, message: 'the live tail to reach the marker' });
    const everything = [text, liveText(), JSON.stringify(forwarded.events), ...filesUnder(agent.stateDir)];
    for (const leak of LEAKS) for (const s of everything) expect(s).not.toContain(leak);
    expect(liveText()).toContain('plain ***');
    live.disconnect();

    // names only, for the owner and a viewer
    for (const api of [p.api, viewer.api]) {
      const shown = await api.request<Execution>('GET', `/api/executions/${id}`);
      expect(shown.body.secrets).toEqual(['DB_PASSWORD']);
      expect(shown.text).not.toContain(VALUE);
      const secrets = await api.request('GET', `/api/projects/${p.projectId}/secrets`);
      expect(secrets.status).toBe(200);
      expect(secrets.text).toContain('DB_PASSWORD');
      expect(secrets.text).not.toContain(VALUE);
    }
  });

  test('unknown secret → 400 naming secrets; another project’s secret → 400 the same; nothing created', async () => {
    const other = await setupProject(server.url, 'other-tenant');
    const made = await other.api.request('POST', `/api/projects/${other.projectId}/secrets`, { body: { name: 'THEIR_TOKEN', value: 'theirs-5b7c9d1e' } });
    expect(made.status).toBe(201);
    const before = (await p.api.request<unknown[]>('GET', `/api/projects/${p.projectId}/executions`)).body.length;
    for (const name of ['NO_SUCH_SECRET', 'THEIR_TOKEN']) {
      const res = await p.api.request('POST', `/api/projects/${p.projectId}/executions`, {
        body: { script: 'true', secrets: [name], targets: { machineIds: [agent.machineId] } },
      });
      expectError(res, 400, 'validation_failed', { field: 'secrets', message: new RegExp(name) });
      expect(res.text).not.toContain('theirs-5b7c9d1e');
    }
    expect((await p.api.request<unknown[]>('GET', `/api/projects/${p.projectId}/executions`)).body.length).toBe(before);
  });

  test('with the server down the agent spools the output masked: the spool never holds the value; after the restart the log is masked and whole', async () => {
    const go = path.join(tmp, 'go-2');
    const done = path.join(tmp, 'done-2');
    const id = await run(leakyScript(go, done));
    await waitFor(async () => (await p.api.getExecution(id)).status === 'running', { timeoutMs: 20_000, intervalMs: 50, message: 'the run to start' });
    await server.kill(); // nothing is acknowledged from here on: the output stays in the agent's spool
    fs.writeFileSync(go, '');
    const spool = path.join(agent.stateDir, 'spool');
    await waitFor(() => filesUnder(spool).some((f) => f.includes('marker-all-written')), {
      timeoutMs: 30_000,
      intervalMs: 20,
      message: 'the agent to spool the marker line',
    });
    const spooled = filesUnder(spool).join('\n');
    expect(spooled).toContain('plain ***');
    for (const leak of LEAKS) for (const f of filesUnder(agent.stateDir)) expect(f).not.toContain(leak);

    await server.restart();
    fs.writeFileSync(done, '');
    const e = await waitForFinal(p, id);
    expect(e.status).toBe('succeeded');
    const text = await p.api.getExecutionLogText(id);
    expect(text.split('\n').sort()).toEqual([...EXPECTED_LOG].sort());
    for (const leak of LEAKS) expect(text).not.toContain(leak);
    // nor in what either process logged, restarts included
    expect(server.logs()).not.toContain(VALUE);
    expect(agent.logs()).not.toContain(VALUE);
  });
});
