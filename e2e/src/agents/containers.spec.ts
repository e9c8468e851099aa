/**
 * Container supervision end to end: a real server, a real agent process and
 * the real Docker engine. What the API creates, stops and removes, and what
 * `docker run` does behind Kapitan's back, reaches a dashboard subscriber
 * live; logs follow live and stop when the viewer leaves; the engine going
 * away under a running agent (a socket proxy cut and restored, so the shared
 * engine is never restarted) ends in a fresh snapshot (threat model T28).
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import {
  LiveClientEvents,
  LiveServerEvents,
  type ContainerLogsSubscribedAck,
  type ContainerOperation,
  type LiveContainersEvent,
  type MachineContainer,
  type MachineDockerStatus,
} from '@kapitan/shared';
import { buildBusyboxImage, DockerSocketProxy, removeImages } from '@kapitan/agent/testing';
import { connectLive, describeOrSkip, emitWithAck, makeTempDir, removeDir, requireDockerSync, startServer, waitFor, waitForSocketEvent, type LiveSocket, type TestAgent, type TestServer } from '../harness';
import { setupProject, startOnlineAgent, type TestProject } from './fixtures';

const run = promisify(execFile);
const RUN = `e2e-${process.pid}-${Date.now()}`;
const docker = async (...args: string[]): Promise<string> => (await run('docker', args, { timeout: 60_000 })).stdout.trim();

describeOrSkip(requireDockerSync())('containers (real agent, real Docker)', () => {
  let server: TestServer;
  let p: TestProject;
  let agent: TestAgent;
  let live: LiveSocket;
  let image = '';
  let dir = '';
  let proxy: DockerSocketProxy;
  /** The dashboard's view, kept from live events only. */
  const view = new Map<string, MachineContainer>();

  const containers = (machineId: string) => p.api.request<MachineContainer[]>('GET', `/api/machines/${machineId}/containers`);
  const operation = async (id: string, final = true): Promise<ContainerOperation> =>
    waitFor(
      async () => {
        const o = (await p.api.request<ContainerOperation>('GET', `/api/container-operations/${id}`)).body;
        return !final || o.status === 'succeeded' || o.status === 'failed' ? o : null;
      },
      { timeoutMs: 60_000, intervalMs: 100, message: `operation ${id}` },
    );

  beforeAll(async () => {
    image = (await buildBusyboxImage(`kapitan-test/e2e-containers:${RUN}`, RUN)).tag;
    dir = await makeTempDir('kapitan-e2e-docker-');
    proxy = new DockerSocketProxy(path.join(dir, 'docker.sock'));
    await proxy.restore();
    server = await startServer({ database: 'sqlite' });
    p = await setupProject(server.url, 'containers');
    agent = await startOnlineAgent(server.url, p, { env: { KAPITAN_AGENT_DOCKER_SOCKET: proxy.socketPath, KAPITAN_AGENT_MAX_BACKOFF_MS: '1000' } });
    live = await connectLive(server.url, p.owner.accessToken);
    live.on(LiveServerEvents.containers, (e: LiveContainersEvent) => {
      if (e.machineId !== agent.machineId) return;
      if (e.snapshot) view.clear();
      for (const c of e.containers) view.set(c.id, c);
      for (const id of e.removed) view.delete(id);
    });
    expect(((await emitWithAck(live, LiveClientEvents.subscribeProject, { projectId: p.projectId })) as { ok: boolean }).ok).toBe(true);
    await waitFor(async () => ((await p.api.request<MachineDockerStatus>('GET', `/api/machines/${agent.machineId}/docker`)).body.available ? true : null), {
      timeoutMs: 20_000,
      message: 'docker available',
    });
  }, 120_000);

  afterAll(async () => {
    live?.disconnect();
    await agent?.dispose();
    await server?.dispose();
    await proxy?.cut();
    const ids = (await docker('ps', '-aq', '--filter', `label=kapitan.test=${RUN}`)).split('\n').filter(Boolean);
    if (ids.length) await docker('rm', '-f', ...ids);
    await removeImages(image);
    if (dir) await removeDir(dir);
  }, 60_000);

  test('created through the API: running live at the dashboard, then stopped (exited) live, then removed', async () => {
    const created = await p.api.request<ContainerOperation>('POST', `/api/machines/${agent.machineId}/containers`, {
      body: { image, name: `web-${RUN}`, labels: { 'kapitan.test': RUN }, env: { MODE: 'e2e' }, command: ['sh', '-c', "trap 'exit 0' TERM; while true; do sleep 0.1; done"] },
    });
    expect(created.status).toBe(202);
    expect(created.body.status).toBe('queued');
    const done = await operation(created.body.id);
    expect(done).toMatchObject({ status: 'succeeded', error: null });
    const id = done.containerId!;
    await waitFor(() => (view.get(id)?.state === 'running' ? true : null), { timeoutMs: 10_000, message: 'running at the dashboard' });
    expect(view.get(id)).toMatchObject({ name: `web-${RUN}`, image, machineId: agent.machineId });
    expect((await containers(agent.machineId)).body.find((c) => c.id === id)?.state).toBe('running');

    const stop = await p.api.request<ContainerOperation>('POST', `/api/machines/${agent.machineId}/containers/${id}/stop`);
    expect(stop.status).toBe(202);
    expect((await operation(stop.body.id)).status).toBe('succeeded');
    await waitFor(() => (view.get(id)?.state === 'exited' ? true : null), { timeoutMs: 10_000, message: 'exited at the dashboard' });

    const rm = await p.api.request<ContainerOperation>('POST', `/api/machines/${agent.machineId}/containers/${id}/remove`);
    expect((await operation(rm.body.id)).status).toBe('succeeded');
    await waitFor(() => (!view.has(id) ? true : null), { timeoutMs: 10_000, message: 'gone at the dashboard' });
  }, 120_000);

  test('a create from an image not on the machine fails with the reason; nothing is pulled', async () => {
    const r = await p.api.request<ContainerOperation>('POST', `/api/machines/${agent.machineId}/containers`, { body: { image: `kapitan-test/absent:${RUN}` } });
    const done = await operation(r.body.id);
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/not on this machine/);
  }, 60_000);

  test('a container started outside Kapitan appears live, and its removal disappears', async () => {
    const id = await docker('run', '-d', '--label', `kapitan.test=${RUN}`, image);
    await waitFor(() => (view.get(id)?.state === 'running' ? true : null), { timeoutMs: 10_000, message: 'the outside container at the dashboard' });
    await docker('rm', '-f', id);
    await waitFor(() => (!view.has(id) ? true : null), { timeoutMs: 10_000, message: 'its removal at the dashboard' });
  }, 60_000);

  test('logs follow live from a tail and the agent stops following when the viewer leaves', async () => {
    const id = await docker('run', '-d', '--label', `kapitan.test=${RUN}`, image, 'sh', '-c', 'echo before-1; echo before-2; i=0; while true; do i=$((i+1)); echo "tick-$i"; sleep 0.2; done');
    await waitFor(() => (view.has(id) ? true : null), { timeoutMs: 10_000, message: 'the container known' });
    const viewer = await connectLive(server.url, p.owner.accessToken);
    const seen: string[] = [];
    viewer.on(LiveServerEvents.containerLogs, (e: { lines: { data: string }[] }) => seen.push(...e.lines.map((l) => l.data)));
    const sub = (await emitWithAck(viewer, LiveClientEvents.subscribeContainerLogs, { machineId: agent.machineId, containerId: id, tail: 100 })) as ContainerLogsSubscribedAck;
    expect(sub.ok).toBe(true);
    await waitFor(() => (seen.includes('before-1') && seen.some((l) => l.startsWith('tick-')) ? true : null), { timeoutMs: 15_000, message: 'tail and live lines' });
    const ticks = (): number => seen.filter((l) => l.startsWith('tick-')).length;
    const before = ticks();
    await waitFor(() => (ticks() > before + 2 ? true : null), { timeoutMs: 10_000, message: 'more live lines' });

    if (!sub.ok) throw new Error('subscribe refused');
    const streamId = sub.streamId;
    const ended = (): boolean => agent.logs().split('\n').some((l) => l.includes('container log follow ended') && l.includes(streamId) && l.includes('"stopped"'));
    expect(ended()).toBe(false);
    viewer.disconnect();
    // the server sees the stream's room empty and tells the agent, which stops reading the container's log
    await waitFor(() => (ended() ? true : null), { timeoutMs: 15_000, message: 'the agent to stop following' });
    await docker('rm', '-f', id);
  }, 60_000);

  test('the Docker engine goes away under the running agent: unavailable at the dashboard, then back with a fresh snapshot', async () => {
    const statuses: MachineDockerStatus[] = [];
    live.on(LiveServerEvents.dockerStatus, (e: { status: MachineDockerStatus }) => statuses.push(e.status));
    await proxy.cut();
    await waitFor(() => (statuses.some((s) => !s.available) ? true : null), { timeoutMs: 15_000, message: 'docker unavailable at the dashboard' });
    expect(statuses.find((s) => !s.available)!.reason).toMatch(/Docker engine|Docker socket/);
    const api = (await p.api.request<MachineDockerStatus>('GET', `/api/machines/${agent.machineId}/docker`)).body;
    expect(api.available).toBe(false);

    // created while the agent cannot see the engine: only the snapshot after the reconnect can bring it
    const id = await docker('run', '-d', '--label', `kapitan.test=${RUN}`, image);
    const snapshot = waitForSocketEvent({ socket: live, event: LiveServerEvents.containers, match: (e: LiveContainersEvent) => e.snapshot && e.containers.some((c) => c.id === id), timeoutMs: 20_000 });
    await proxy.restore();
    await snapshot;
    await waitFor(() => (statuses.at(-1)?.available ? true : null), { timeoutMs: 10_000, message: 'docker available again' });
    expect(view.get(id)?.state).toBe('running');
    await docker('rm', '-f', id);
  }, 60_000);
});
