/**
 * Files on every node: two server nodes on one MySQL database and one Redis,
 * with one shared file store directory (KAPITAN_FILES_DIR, as a shared
 * mount would be), behind a real HAProxy. A file uploaded through node A is
 * read back whole from node B and through the balancer; a resumable upload
 * begun on A, continued on B and completed through the balancer is one
 * file; a script uploaded on A runs through B; and a real agent connected
 * through the balancer downloads a file uploaded on A from B
 * (README "Running more than one node").
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isFinalDelivery, type Delivery, type StoredFile, type Upload } from '@kapitan/shared';
import {
  ApiClient,
  createTestDatabase,
  describeOrSkip,
  jwtSecret,
  redisUrl,
  requireHaproxy,
  requireMysql,
  requireRedis,
  startAgent,
  startBalancer,
  startServer,
  waitFor,
  waitForMachineStatus,
  type TestBalancer,
  type TestDatabase,
  type TestServer,
} from '../harness';
import { setupProject, waitForFinal, type TestProject } from './fixtures';

const REDIS_URL = redisUrl();
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describeOrSkip(requireMysql(), requireRedis(REDIS_URL), requireHaproxy())('files on two nodes with a shared store (MySQL + Redis + HAProxy)', () => {
  let db: TestDatabase;
  let a: TestServer;
  let b: TestServer;
  let lb: TestBalancer;
  let p: TestProject;
  let shared: string;

  beforeAll(async () => {
    shared = fs.mkdtempSync(path.join(os.tmpdir(), 'kapitan-shared-files-'));
    db = await createTestDatabase();
    const env = { REDIS_URL, JWT_SECRET: jwtSecret(), KAPITAN_SECRETS_KEY: randomBytes(32).toString('base64'), KAPITAN_FILES_DIR: shared };
    a = await startServer({ database: db, env: { ...env, KAPITAN_NODE_ID: 'files-a' }, name: 'files-a' });
    b = await startServer({ database: db, env: { ...env, KAPITAN_NODE_ID: 'files-b' }, name: 'files-b' });
    lb = await startBalancer([
      { name: 'a', port: a.port },
      { name: 'b', port: b.port },
    ]);
    p = await setupProject(a.url, 'files-nodes');
  }, 180_000);
  afterAll(async () => {
    await lb?.dispose();
    await a?.dispose();
    await b?.dispose();
    await db?.drop();
    if (shared) fs.rmSync(shared, { recursive: true, force: true });
  });

  /** The file's content as node `url` serves it. */
  const content = async (url: string, fileId: string): Promise<Buffer> => {
    const res = await fetch(`${url}/api/files/${fileId}/content`, { headers: { authorization: `Bearer ${p.owner.accessToken}` } });
    expect(res.status).toBe(200);
    return Buffer.from(await res.arrayBuffer());
  };

  test('uploaded through node A, read whole from node B and through the balancer', async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    const file = await new ApiClient(a.url, p.owner.accessToken).uploadFile(p.projectId, 'file', 'payload.bin', bytes);
    expect(file.sha256).toBe(sha256(bytes));
    expect(sha256(await content(b.url, file.id))).toBe(sha256(bytes));
    // Round robin: two reads through HAProxy reach both nodes.
    for (let i = 0; i < 2; i++) expect(sha256(await content(lb.url, file.id))).toBe(sha256(bytes));
  });

  test('a resumable upload begun on A, continued on B, completed through the balancer is one file', async () => {
    const bytes = randomBytes(2 * 1024 * 1024);
    const half = bytes.length / 2;
    const auth = { authorization: `Bearer ${p.owner.accessToken}` };
    const created = await fetch(`${a.url}/api/projects/${p.projectId}/uploads`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'file', name: 'resumed.bin', size: bytes.length, sha256: sha256(bytes) }),
    });
    expect(created.status).toBe(201);
    const upload = (await created.json()) as Upload;
    for (const [via, offset, part] of [
      [a.url, 0, bytes.subarray(0, half)],
      [b.url, half, bytes.subarray(half)],
    ] as const) {
      const res = await fetch(`${via}/api/uploads/${upload.id}?offset=${offset}`, { method: 'PUT', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: part });
      expect(res.status).toBe(200);
    }
    const done = await fetch(`${lb.url}/api/uploads/${upload.id}/complete`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{}' });
    expect(done.status).toBe(201);
    const file = (await done.json()) as StoredFile;
    expect(file.sha256).toBe(sha256(bytes));
    expect(sha256(await content(a.url, file.id))).toBe(sha256(bytes));
    expect(sha256(await content(b.url, file.id))).toBe(sha256(bytes));
  });

  test('a script uploaded on A runs through B; an agent through the balancer downloads a file uploaded on A from B', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'kapitan-files-nodes-deploy-'));
    const agent = await startAgent({ serverUrl: lb.url, token: (await p.api.createEnrolmentToken(p.projectId)).token, name: 'files-agent', env: { KAPITAN_AGENT_DEPLOY_DIRS: root } });
    const onA = new ApiClient(a.url, p.owner.accessToken);
    const onB = new ApiClient(b.url, p.owner.accessToken);
    try {
      await waitForMachineStatus({ api: onB, projectId: p.projectId, machineId: agent.machineId, status: 'online' });
      // A script is read by the node that takes the run: B reads what A stored.
      const script = await onA.uploadFile(p.projectId, 'script', 'hello.sh', Buffer.from('#!/bin/sh\necho "from the shared store"\n'));
      const { executions } = await onB.createExecution(p.projectId, { fileId: script.id, targets: { machineIds: [agent.machineId] } });
      const e = await waitForFinal({ ...p, api: onB }, executions[0].id, 60_000);
      expect(e.status).toBe('succeeded');
      expect(await onB.getExecutionLogText(e.id)).toBe('from the shared store\n');

      // A deploy: the agent fetches the bytes over HTTP through the balancer, which now sends new requests to B only.
      const bytes = randomBytes(256 * 1024);
      const file = await onA.uploadFile(p.projectId, 'file', 'payload.bin', bytes);
      await lb.setState('a', 'drain');
      const before = b.logs().split(`/api/agent/files/${file.id}`).length;
      const res = await onB.request<Delivery>('POST', `/api/projects/${p.projectId}/deploys`, { body: { fileId: file.id, targets: { machineIds: [agent.machineId] }, path: path.join(root, 'payload.bin') } });
      expect(res.status).toBe(201);
      const part = await waitFor(
        async () => {
          const d = (await onB.request<Delivery>('GET', `/api/deliveries/${res.body.id}`)).body;
          return d.machines.length && isFinalDelivery(d.machines[0].status) ? d.machines[0] : null;
        },
        { timeoutMs: 60_000, intervalMs: 100, message: 'the deploy to end' },
      );
      expect(part).toMatchObject({ status: 'succeeded', receivedBytes: bytes.length });
      expect(sha256(fs.readFileSync(path.join(root, 'payload.bin')))).toBe(sha256(bytes));
      expect(b.logs().split(`/api/agent/files/${file.id}`).length).toBeGreaterThan(before); // served by B
    } finally {
      await lb.setState('a', 'ready');
      await agent.dispose();
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
