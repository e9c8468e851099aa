/**
 * Container supervision against the real Docker engine: the snapshot, live
 * changes from the event stream, the engine going away and coming back
 * (through a socket proxy this spec cuts and restores, so the shared engine
 * itself is never restarted), operations applied once, and log follows.
 * The server side is an in-process link that records what it is sent.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { AgentToServerEventMap, Container, ContainerOperationFinished, ContainersChanged, ContainersSnapshot, DockerStatus } from '@kapitan/shared';
import { buildBusyboxImage, dockerUnavailableReason, removeImages } from '../docker-fixture';
import { DockerSocketProxy } from '../docker-proxy';
import { Outbox, type OutboxMessage } from '../outbox';
import { tmpDir, waitFor } from '../test-support/wait';
import { dockerodeLoaded, dockerTarget } from './docker-target';
import { ContainerLogFollower } from './logs';
import { FileOperationJournal } from './operation-journal';
import { PolicyGuard } from '../policy';
import { ContainerOperations } from './operations';
import { ContainerSupervisor, type ServerLink } from './supervisor';

const run = promisify(execFile);
const isCI = /^(1|true|yes)$/i.test(process.env.CI ?? '');
const RUN = `agent-${process.pid}-${Date.now()}`;
const TEST_LABEL = 'kapitan.test';
const DOCKER_SOCK = '/var/run/docker.sock';

/** The server as the supervisor sees it: every request recorded, acked ok. */
class RecordingLink extends EventEmitter implements ServerLink {
  ready = true;
  readonly sent: { event: keyof AgentToServerEventMap; payload: unknown }[] = [];
  async request(event: keyof AgentToServerEventMap, payload: unknown): Promise<unknown> {
    if (!this.ready) throw new Error('not connected');
    this.sent.push({ event, payload });
    this.emit('sent');
    return { ok: true };
  }
  of<T>(event: keyof AgentToServerEventMap): T[] {
    return this.sent.filter((s) => s.event === event).map((s) => s.payload as T);
  }
  /** The server's view: last snapshot, patched by every later change. */
  view(): Map<string, Container> {
    const m = new Map<string, Container>();
    let parts: Container[] = [];
    for (const s of this.sent) {
      if (s.event === 'containers:snapshot') {
        const p = s.payload as ContainersSnapshot;
        parts.push(...p.containers);
        if (p.last) {
          m.clear();
          for (const c of parts) m.set(c.id, c);
          parts = [];
        }
      } else if (s.event === 'containers:changed') {
        const p = s.payload as ContainersChanged;
        for (const c of p.containers) m.set(c.id, c);
        for (const id of p.removed) m.delete(id);
      }
    }
    return m;
  }
}

async function docker(...args: string[]): Promise<string> {
  return (await run('docker', args, { timeout: 60_000 })).stdout.trim();
}

describe('container supervision (real engine)', () => {
  let reason: string | null = null;
  let image = '';
  let dir = '';
  const stop: (() => unknown)[] = [];

  beforeAll(async () => {
    reason = await dockerUnavailableReason();
    if (reason && isCI) throw new Error(`Docker unavailable under CI=true: ${reason}`);
    if (reason) {
      process.stderr.write(`[agent] SKIP (local run only) — ${reason}\n`);
      return;
    }
    image = (await buildBusyboxImage(`kapitan-test/containers:${RUN}`, RUN)).tag;
    dir = tmpDir();
  }, 120_000);

  afterEach(async () => {
    while (stop.length) await stop.pop()!();
  });

  afterAll(async () => {
    if (reason) return;
    const ids = (await docker('ps', '-aq', '--filter', `label=${TEST_LABEL}=${RUN}`)).split('\n').filter(Boolean);
    if (ids.length) await docker('rm', '-f', ...ids);
    await removeImages(image);
    fs.rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const startSupervisor = (link: ServerLink, socketPath = DOCKER_SOCK, maxBackoffMs = 300): ContainerSupervisor => {
    const s = new ContainerSupervisor({ target: { kind: 'unix', socketPath }, link, debounceMs: 50, maxBackoffMs });
    s.start();
    stop.push(() => s.stop());
    return s;
  };

  test('with no Docker socket: unavailable with the reason, and dockerode is never loaded', async () => {
    if (reason) return;
    const link = new RecordingLink();
    const missing = path.join(dir, 'no-such.sock');
    startSupervisor(link, missing);
    const status = await waitFor(() => link.of<DockerStatus>('docker:status').at(-1), 'a docker:status');
    expect(status).toEqual({ available: false, reason: `no Docker socket at ${missing}`, engineVersion: null });
    expect(dockerodeLoaded()).toBe(false);
    expect(link.of('containers:snapshot')).toHaveLength(0);
  });

  test('DOCKER_HOST is honoured when no socket is configured', () => {
    expect(dockerTarget(undefined, { DOCKER_HOST: 'unix:///run/user/1000/docker.sock' }, DOCKER_SOCK)).toEqual({ kind: 'unix', socketPath: '/run/user/1000/docker.sock' });
    expect(dockerTarget(undefined, { DOCKER_HOST: 'tcp://10.0.0.2:2375' }, DOCKER_SOCK)).toEqual({ kind: 'tcp', host: '10.0.0.2', port: 2375, protocol: 'http' });
    expect(dockerTarget('/x.sock', { DOCKER_HOST: 'tcp://10.0.0.2:2375' }, DOCKER_SOCK)).toEqual({ kind: 'unix', socketPath: '/x.sock' });
    expect(dockerTarget(undefined, {}, DOCKER_SOCK)).toEqual({ kind: 'unix', socketPath: DOCKER_SOCK });
    expect(() => dockerTarget(undefined, { DOCKER_HOST: 'ssh://me@host' }, DOCKER_SOCK)).toThrow(/DOCKER_HOST/);
  });

  test('snapshot on start; a container started and removed outside Kapitan shows up and goes away', async () => {
    if (reason) return;
    const before = await docker('run', '-d', '--label', `${TEST_LABEL}=${RUN}`, '--name', `k-before-${RUN}`, image);
    const link = new RecordingLink();
    startSupervisor(link);
    await waitFor(() => link.of<ContainersSnapshot>('containers:snapshot').some((s) => s.last), 'a snapshot');
    const first = link.view().get(before);
    expect(first).toMatchObject({ id: before, name: `k-before-${RUN}`, image, state: 'running', health: 'none', restartCount: 0 });
    expect(first!.labels[TEST_LABEL]).toBe(RUN);
    expect(first!.status).toMatch(/^Up/);

    const outside = await docker('run', '-d', '--label', `${TEST_LABEL}=${RUN}`, '-p', '127.0.0.1::8080', image);
    await waitFor(() => link.view().get(outside)?.state === 'running', 'the outside container, running');
    await waitFor(() => link.view().get(outside)!.ports.length > 0, `its ports (${JSON.stringify(link.view().get(outside))})`, 3000).catch(async (e) => {
      throw new Error(`${e.message}; engine: ${await docker('ps', '--filter', `id=${outside}`, '--format', '{{.Ports}}')}`);
    });
    expect(link.view().get(outside)!.ports).toEqual([expect.objectContaining({ privatePort: 8080, protocol: 'tcp', ip: '127.0.0.1' })]);

    await docker('stop', '-t', '0', before);
    await waitFor(() => link.view().get(before)?.state === 'exited', 'the stopped container, exited');
    expect(link.view().get(before)!.exitCode).not.toBeNull();

    await docker('rm', '-f', outside);
    await waitFor(() => !link.view().has(outside), 'the removed container gone');
    // a burst (create, start, die, destroy) was coalesced: far fewer messages than engine events
    expect(link.of('containers:changed').length).toBeLessThan(12);
    await docker('rm', '-f', before);
  }, 60_000);

  test('the engine goes away and comes back: unavailable with a reason, then available and a fresh snapshot', async () => {
    if (reason) return;
    const proxy = new DockerSocketProxy(path.join(dir, `proxy-${randomUUID().slice(0, 8)}.sock`));
    await proxy.restore();
    stop.push(() => proxy.cut());
    const link = new RecordingLink();
    const s = startSupervisor(link, proxy.socketPath, 200);
    await waitFor(() => link.of<ContainersSnapshot>('containers:snapshot').some((x) => x.last), 'the first snapshot');
    await proxy.cut();
    const down = await waitFor(() => link.of<DockerStatus>('docker:status').find((x) => !x.available), 'docker:status unavailable');
    expect(down.reason).toMatch(/Docker engine (closed its event stream|at unix:)|lost the Docker engine|no Docker socket/);
    expect(s.client).toBeNull();

    // meanwhile a container appears on the engine: the agent cannot see it until it is back
    const created = await docker('run', '-d', '--label', `${TEST_LABEL}=${RUN}`, image);
    const snapshotsBefore = link.of('containers:snapshot').length;
    await proxy.restore();
    await waitFor(() => link.of<DockerStatus>('docker:status').at(-1)?.available === true, 'docker:status available again');
    await waitFor(() => link.of('containers:snapshot').length > snapshotsBefore && link.view().has(created), 'a new snapshot with the new container');
    await docker('rm', '-f', created);
  }, 60_000);

  test('a server reconnect resends the snapshot; a change while the server is away is in it', async () => {
    if (reason) return;
    const link = new RecordingLink();
    const s = startSupervisor(link);
    await waitFor(() => link.of<ContainersSnapshot>('containers:snapshot').some((x) => x.last), 'a snapshot');
    link.ready = false;
    const created = await docker('run', '-d', '--label', `${TEST_LABEL}=${RUN}`, image);
    const n = link.sent.length;
    link.ready = true;
    s.onServerReady();
    await waitFor(() => link.view().has(created), 'the container in the new snapshot');
    expect(link.sent.slice(n).map((x) => x.event)).toEqual(expect.arrayContaining(['docker:status', 'containers:snapshot']));
    await docker('rm', '-f', created);
  }, 60_000);

  describe('operations', () => {
    const sent: OutboxMessage[] = [];
    let outbox: Outbox;
    let ops: ContainerOperations;
    let journalDir: string;
    const finished = (operationId: string): ContainerOperationFinished | undefined =>
      sent.find((m) => m.event === 'container-operation:finished' && m.payload.operationId === operationId)?.payload as ContainerOperationFinished | undefined;

    beforeEach(() => {
      if (reason) return;
      sent.length = 0;
      journalDir = tmpDir();
      outbox = new Outbox();
      outbox.attach({ send: (m, cb) => (sent.push(m), cb(null, { ok: true })) });
      const link = new RecordingLink();
      const sup = startSupervisor(link);
      ops = new ContainerOperations({
        outbox,
        journal: new FileOperationJournal(journalDir),
        docker: () => ({ client: sup.client, reason: sup.dockerStatus.reason }),
        pollMs: 50,
      });
      return waitFor(() => sup.client, 'the engine');
    });

    const labels = { [TEST_LABEL]: RUN };

    test('create-and-start succeeds once the container runs; stop, start, restart, remove; each id applied once', async () => {
      if (reason) return;
      const create = randomUUID();
      // traps TERM so stop and restart do not wait out Docker's 10 s grace
      const spec = { image, command: ['sh', '-c', "trap 'exit 0' TERM; while true; do sleep 0.1; done"], name: `k-op-${RUN}`, env: { GREETING: 'hi there' }, labels, restartPolicy: 'unless-stopped' as const, ports: [{ containerPort: 80, protocol: 'tcp' as const }] };
      expect(ops.handle({ operationId: create, kind: 'create', containerId: null, spec })).toBe('applied');
      expect(ops.handle({ operationId: create, kind: 'create', containerId: null, spec })).toBe('duplicate');
      const made = await waitFor(() => finished(create), 'create finished', 30_000);
      expect(made).toMatchObject({ status: 'succeeded', error: null });
      const id = made.containerId!;
      const inspect = JSON.parse(await docker('inspect', id))[0];
      expect(inspect.State.Running).toBe(true);
      expect(inspect.Config.Env).toContain('GREETING=hi there');
      expect(inspect.Config.Labels['kapitan.operation']).toBe(create);
      expect(inspect.HostConfig.RestartPolicy.Name).toBe('unless-stopped');
      // one container for the operation, although it was dispatched twice
      expect((await docker('ps', '-aq', '--filter', `label=kapitan.operation=${create}`)).split('\n').filter(Boolean)).toHaveLength(1);
      // a repeat after it finished sends the known result again and creates nothing
      expect(ops.handle({ operationId: create, kind: 'create', containerId: null, spec })).toBe('duplicate');

      for (const [kind, state] of [['stop', false], ['start', true], ['restart', true]] as const) {
        const op = randomUUID();
        ops.handle({ operationId: op, kind, containerId: id, spec: null });
        expect(await waitFor(() => finished(op), `${kind} finished`, 30_000)).toMatchObject({ status: 'succeeded', containerId: id });
        expect(JSON.parse(await docker('inspect', id))[0].State.Running).toBe(state);
      }
      const rm = randomUUID();
      ops.handle({ operationId: rm, kind: 'remove', containerId: id, spec: null });
      expect(await waitFor(() => finished(rm), 'remove finished', 30_000)).toMatchObject({ status: 'succeeded' });
      await expect(docker('inspect', id)).rejects.toThrow();

      // the journal outlives the process: a new one still knows these ids
      const again = new ContainerOperations({ outbox, journal: new FileOperationJournal(journalDir), docker: () => ({ client: null, reason: 'x' }) });
      expect(again.handle({ operationId: rm, kind: 'remove', containerId: id, spec: null })).toBe('duplicate');
    }, 90_000);

    test("failures carry Docker's words: an image not on the machine, an unknown container, a container that exits", async () => {
      if (reason) return;
      const noImage = randomUUID();
      ops.handle({ operationId: noImage, kind: 'create', containerId: null, spec: { image: `kapitan-test/absent:${RUN}`, labels } });
      expect((await waitFor(() => finished(noImage), 'create finished'))!.error).toMatch(/is not on this machine.*never pulls/);

      const unknown = randomUUID();
      ops.handle({ operationId: unknown, kind: 'start', containerId: 'f'.repeat(64), spec: null });
      const u = await waitFor(() => finished(unknown), 'start finished');
      expect(u).toMatchObject({ status: 'failed' });
      expect(u!.error).toMatch(/no such container/i);

      const exits = randomUUID();
      ops.handle({ operationId: exits, kind: 'create', containerId: null, spec: { image, command: ['false'], labels, waitSeconds: 20 } });
      const e = await waitFor(() => finished(exits), 'create finished', 30_000);
      expect(e).toMatchObject({ status: 'failed' });
      expect(e!.error).toMatch(/exited with code 1/);
      expect(e!.containerId).toMatch(/^[0-9a-f]{64}$/);
    }, 60_000);

    test('the client policy refuses before Docker is touched: refused with the rule, journalled, a repeat applies nothing', async () => {
      if (reason) return;
      const guard = new PolicyGuard({
        path: '/etc/kapitan/agent-policy.json',
        found: true,
        sha256: null,
        effective: { scripts: { enabled: true, allowSha256: null }, deploys: { enabled: true, pathPrefixes: [] }, docker: { enabled: true, images: ['kapitan-test/allowed:*'] }, readOnly: false },
      });
      const docker = jest.fn(() => ({ client: null, reason: 'must not be asked' }));
      const guarded = new ContainerOperations({ outbox, journal: new FileOperationJournal(journalDir), docker, refuse: (kind, img) => guard.container(kind, img) });
      const create = randomUUID();
      expect(guarded.handle({ operationId: create, kind: 'create', containerId: null, spec: { image, labels } })).toBe('applied');
      expect(await waitFor(() => finished(create), 'the refusal')).toMatchObject({
        status: 'refused',
        containerId: null,
        error: `refused by the client policy (/etc/kapitan/agent-policy.json): image ${image} does not match docker.images (kapitan-test/allowed:*)`,
      });
      expect(guarded.handle({ operationId: create, kind: 'create', containerId: null, spec: { image, labels } })).toBe('duplicate');
      const off = new PolicyGuard({ ...guard.reported, effective: { ...guard.reported.effective, readOnly: true } });
      const ro = new ContainerOperations({ outbox, journal: new FileOperationJournal(journalDir), docker, refuse: (kind, img) => off.container(kind, img) });
      const stopOp = randomUUID();
      ro.handle({ operationId: stopOp, kind: 'stop', containerId: 'a'.repeat(64), spec: null });
      expect(await waitFor(() => finished(stopOp), 'the refusal')).toMatchObject({ status: 'refused', error: expect.stringContaining('readOnly is set: no container stop') });
      expect(docker).not.toHaveBeenCalled();
    });

    test('an operation interrupted by a restart is reported failed, not applied again', async () => {
      if (reason) return;
      const journal = new FileOperationJournal(journalDir);
      const id = randomUUID();
      journal.begin(id, new Date().toISOString());
      const after = new ContainerOperations({ outbox, journal: new FileOperationJournal(journalDir), docker: () => ({ client: null, reason: 'x' }) });
      expect(after.recover()).toBe(1);
      expect(await waitFor(() => finished(id), 'the failure report')).toMatchObject({ status: 'failed', error: expect.stringMatching(/restarted while applying/) });
      expect(after.handle({ operationId: id, kind: 'remove', containerId: 'a'.repeat(64), spec: null })).toBe('duplicate');
    });
  });

  test('logs: follow from a tail, live lines of both streams, stop ends the follow', async () => {
    if (reason) return;
    const id = await docker(
      'run', '-d', '--label', `${TEST_LABEL}=${RUN}`, image,
      'sh', '-c', 'for i in 1 2 3 4 5; do echo old-$i; done; echo err-line >&2; i=0; while true; do i=$((i+1)); echo live-$i; sleep 0.2; done',
    );
    const link = new RecordingLink();
    const sup = startSupervisor(link);
    await waitFor(() => sup.client, 'the engine');
    const logs = new ContainerLogFollower({ link, docker: () => sup.client, flushMs: 20 });
    stop.push(() => logs.stopAll());
    await waitFor(async () => (await docker('logs', id)).includes('live-2'), 'the container writing');
    const streamId = randomUUID();
    logs.follow({ streamId, containerId: id, tail: 3, leaseMs: 10_000 });
    const lines = () => link.of<{ streamId: string; lines: { stream: string; data: string }[] }>('container:logs').filter((p) => p.streamId === streamId).flatMap((p) => p.lines);
    await waitFor(() => lines().length >= 6, 'tail and live lines', 15_000);
    const text = lines().map((l) => l.data);
    expect(text).not.toContain('old-1'); // before the tail
    expect(lines().find((l) => l.data === 'err-line')?.stream ?? 'stderr').toBe('stderr');
    expect(text.filter((t) => t.startsWith('live-')).length).toBeGreaterThan(1);
    logs.stop(streamId);
    expect(logs.active()).toEqual([]);
    const count = lines().length;
    await waitFor(async () => (await docker('logs', id)).split('\n').length > count + 10, 'more output on the engine', 15_000);
    expect(lines().length).toBeLessThanOrEqual(count + 1);
    await docker('rm', '-f', id);
  }, 60_000);

  test('logs: a follow that nobody renews stops by itself', async () => {
    if (reason) return;
    const id = await docker('run', '-d', '--label', `${TEST_LABEL}=${RUN}`, image, 'sh', '-c', 'while true; do echo tick; sleep 0.1; done');
    const link = new RecordingLink();
    const sup = startSupervisor(link);
    await waitFor(() => sup.client, 'the engine');
    const logs = new ContainerLogFollower({ link, docker: () => sup.client, flushMs: 20 });
    stop.push(() => logs.stopAll());
    logs.follow({ streamId: randomUUID(), containerId: id, tail: 0, leaseMs: 1000 });
    expect(logs.active()).toHaveLength(1);
    await waitFor(() => logs.active().length === 0, 'the follow to lapse', 5_000);
    await docker('rm', '-f', id);
  }, 30_000);
});
