/**
 * Containers across two server nodes (MySQL + Redis): the agent on node A,
 * the dashboard and the REST caller on node B. A create sent through B
 * reaches the agent through A and succeeds; the container's state reaches
 * the dashboard on B live; a log follow asked on B is fed by the agent on A,
 * and ends on the agent when the viewer on B leaves.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { LiveClientEvents, LiveServerEvents, type ContainerLogsSubscribedAck, type ContainerOperation, type LiveContainersEvent } from '@kapitan/shared';
import { buildBusyboxImage, removeImages } from '@kapitan/agent/testing';
import {
  connectLive,
  createTestDatabase,
  describeOrSkip,
  emitWithAck,
  jwtSecret,
  redisUrl,
  requireDockerSync,
  requireMysql,
  requireRedis,
  startServer,
  waitFor,
  waitForSocketEvent,
  type TestAgent,
  type TestDatabase,
  type TestServer,
} from '../harness';
import { setupProject, startOnlineAgent } from './fixtures';

const run = promisify(execFile);
const RUN = `nodes-${process.pid}-${Date.now()}`;
const docker = async (...args: string[]): Promise<string> => (await run('docker', args, { timeout: 60_000 })).stdout.trim();

describeOrSkip(requireMysql(), requireRedis(), requireDockerSync())('containers on two server nodes (MySQL + Redis, real agent, real Docker)', () => {
  let db: TestDatabase;
  let a: TestServer;
  let b: TestServer;
  let agent: TestAgent;
  let image = '';

  beforeAll(async () => {
    image = (await buildBusyboxImage(`kapitan-test/nodes-containers:${RUN}`, RUN)).tag;
    db = await createTestDatabase();
    const env = { REDIS_URL: redisUrl(), JWT_SECRET: jwtSecret(), KAPITAN_SECRETS_KEY: randomBytes(32).toString('base64') };
    a = await startServer({ database: db, env: { ...env, KAPITAN_NODE_ID: 'node-a' }, name: 'node-a' });
    b = await startServer({ database: db, env: { ...env, KAPITAN_NODE_ID: 'node-b' }, name: 'node-b' });
  }, 120_000);
  afterAll(async () => {
    await agent?.dispose();
    await a?.dispose();
    await b?.dispose();
    await db?.drop();
    const ids = (await docker('ps', '-aq', '--filter', `label=kapitan.test=${RUN}`)).split('\n').filter(Boolean);
    if (ids.length) await docker('rm', '-f', ...ids);
    await removeImages(image);
  }, 60_000);

  test('create through B runs on the agent of A; state and logs reach B live; leaving on B stops the follow on the agent', async () => {
    const p = await setupProject(b.url, 'nodes-containers');
    agent = await startOnlineAgent(a.url, p);
    const live = await connectLive(b.url, p.owner.accessToken);
    expect(((await emitWithAck(live, LiveClientEvents.subscribeProject, { projectId: p.projectId })) as { ok: boolean }).ok).toBe(true);

    const created = await p.api.request<ContainerOperation>('POST', `/api/machines/${agent.machineId}/containers`, {
      body: { image, labels: { 'kapitan.test': RUN }, command: ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo "line-$i"; sleep 0.2; done'] },
    });
    expect(created.status).toBe(202);
    const seen = waitForSocketEvent({
      socket: live,
      event: LiveServerEvents.containers,
      match: (e: LiveContainersEvent) => e.containers.some((c) => c.labels['kapitan.test'] === RUN && c.state === 'running'),
      timeoutMs: 30_000,
    });
    const done = await waitFor(
      async () => {
        const o = (await p.api.request<ContainerOperation>('GET', `/api/container-operations/${created.body.id}`)).body;
        return o.status === 'succeeded' || o.status === 'failed' ? o : null;
      },
      { timeoutMs: 60_000, intervalMs: 100, message: 'the create to finish' },
    );
    expect(done).toMatchObject({ status: 'succeeded', error: null });
    await seen;

    const viewer = await connectLive(b.url, p.owner.accessToken);
    const lines: string[] = [];
    viewer.on(LiveServerEvents.containerLogs, (e: { lines: { data: string }[] }) => lines.push(...e.lines.map((l) => l.data)));
    const sub = (await emitWithAck(viewer, LiveClientEvents.subscribeContainerLogs, { machineId: agent.machineId, containerId: done.containerId!, tail: 10 })) as ContainerLogsSubscribedAck;
    if (!sub.ok) throw new Error(`subscribe refused: ${sub.error.message}`);
    await waitFor(() => (lines.filter((l) => l.startsWith('line-')).length >= 5 ? true : null), { timeoutMs: 15_000, message: 'log lines on B from the agent on A' });

    const ended = (): boolean => agent.logs().split('\n').some((l) => l.includes('container log follow ended') && l.includes(sub.streamId) && l.includes('"stopped"'));
    expect(ended()).toBe(false);
    viewer.disconnect();
    await waitFor(() => (ended() ? true : null), { timeoutMs: 15_000, message: 'the agent on A to stop following' });
    live.disconnect();
  }, 120_000);
});
