/**
 * The in-memory engine of simulated agents, behind the real supervisor: what
 * reaches the server must be the protocol's own messages (checked with the
 * shared schemas), a restart must become one patch with the container as it
 * is now, and a socket path that does not exist must not matter. The
 * agent's metrics sampler over it sends valid samples of its running containers.
 */
import { EventEmitter } from 'node:events';
import { ContainersChangedSchema, ContainersSnapshotSchema, DockerStatusSchema, MetricsSampleSchema, type AgentToServerEventMap } from '@kapitan/shared';
import { ContainerSupervisor, type ServerLink } from './containers/supervisor';
import { SimulatedDockerEngine } from './simulated-docker';
import { simulatedMetricsSampler } from './simulated-metrics';
import { waitFor } from './test-support/wait';

class RecordingLink extends EventEmitter implements ServerLink {
  ready = true;
  readonly sent: { event: keyof AgentToServerEventMap; payload: unknown }[] = [];
  async request(event: keyof AgentToServerEventMap, payload: unknown): Promise<unknown> {
    this.sent.push({ event, payload });
    return { ok: true };
  }
  of(event: keyof AgentToServerEventMap): unknown[] {
    return this.sent.filter((s) => s.event === event).map((s) => s.payload);
  }
}

describe('SimulatedDockerEngine behind the ContainerSupervisor', () => {
  let sup: ContainerSupervisor | null = null;
  afterEach(() => sup?.stop());

  it('sends a valid snapshot of its containers, then one patch per restarted container', async () => {
    const engine = new SimulatedDockerEngine({ containers: 20, seed: 'a' });
    const link = new RecordingLink();
    sup = new ContainerSupervisor({ target: { kind: 'unix', socketPath: '/nonexistent/docker.sock' }, link, engine: engine.client, debounceMs: 20 });
    sup.start();
    await waitFor(() => link.of('containers:snapshot').length > 0, 'the snapshot');
    const status = DockerStatusSchema.parse(link.of('docker:status')[0]);
    expect(status).toEqual({ available: true, reason: null, engineVersion: 'simulated' });
    const snap = ContainersSnapshotSchema.parse(link.of('containers:snapshot')[0]);
    expect(snap.last).toBe(true);
    expect(snap.containers.map((c) => c.id).sort()).toEqual(engine.ids.sort());
    expect(snap.containers.every((c) => c.state === 'running' && c.restartCount === 0)).toBe(true);

    const [a, b] = engine.ids;
    engine.restart(a!, { 'kapitan.bench.at': '123' });
    engine.stop(b!);
    await waitFor(() => link.of('containers:changed').length > 0, 'the patch');
    const changes = link.of('containers:changed').map((p) => ContainersChangedSchema.parse(p));
    // Both containers' events fall in one debounce window: one message, each container once, as it is now.
    expect(changes).toHaveLength(1);
    const byId = new Map(changes[0]!.containers.map((c) => [c.id, c]));
    expect(byId.size).toBe(2);
    expect(byId.get(a!)).toMatchObject({ state: 'running', restartCount: 1, labels: expect.objectContaining({ 'kapitan.bench.at': '123' }) });
    expect(byId.get(b!)).toMatchObject({ state: 'exited', exitCode: 0 });
    expect(changes[0]!.removed).toEqual([]);
  });

  it('a container read again that says nothing new is not sent again (the second look after a start)', async () => {
    const engine = new SimulatedDockerEngine({ containers: 3, seed: 'c' });
    const link = new RecordingLink();
    sup = new ContainerSupervisor({ target: { kind: 'unix', socketPath: '/nonexistent/docker.sock' }, link, engine: engine.client, debounceMs: 20 });
    sup.start();
    await waitFor(() => link.of('containers:snapshot').length > 0, 'the snapshot');
    const [a, b] = engine.ids;
    engine.restart(a!);
    await waitFor(() => link.of('containers:changed').length === 1, 'the patch of the restart');
    const reads = engine.listCalls;
    await waitFor(() => engine.listCalls > reads, 'the second look at the started container', 5000);
    // Reports are sent one after another: once b's patch is out, the second look at a was done and sent nothing.
    engine.stop(b!);
    await waitFor(() => link.of('containers:changed').length >= 2, 'the patch of the stop');
    const changes = link.of('containers:changed').map((p) => ContainersChangedSchema.parse(p));
    expect(changes.map((c) => c.containers.map((x) => x.id))).toEqual([[a], [b]]);
  });

  it('reports the engine unavailable when its event stream ends', async () => {
    const engine = new SimulatedDockerEngine({ containers: 1, seed: 'b' });
    const link = new RecordingLink();
    sup = new ContainerSupervisor({ target: { kind: 'unix', socketPath: '/nonexistent/docker.sock' }, link, engine: engine.client, maxBackoffMs: 50 });
    sup.start();
    await waitFor(() => link.of('containers:snapshot').length > 0, 'the snapshot');
    engine.close();
    await waitFor(() => link.of('docker:status').some((s) => (s as { available: boolean }).available === false), 'status unavailable');
    // …and it dials the engine again: available, and a new snapshot.
    await waitFor(() => link.of('containers:snapshot').length > 1, 'a second snapshot');
  });
});

describe('simulated metrics', () => {
  it("the agent's sampler sends valid samples of the host and every running container, with rates from the second on", async () => {
    const engine = new SimulatedDockerEngine({ containers: 20, seed: 'm' });
    engine.stop(engine.ids[0]!);
    const link = new RecordingLink();
    const sampler = simulatedMetricsSampler({ link, engine, idleIntervalMs: 200, seed: 3 });
    sampler.start();
    try {
      await waitFor(() => link.of('metrics:sample').length >= 2, 'two samples');
    } finally {
      sampler.stop();
    }
    const [first, second] = link.of('metrics:sample').map((p) => MetricsSampleSchema.parse(p));
    expect(first!.host.cpuPercent).toBeNull();
    expect(second!.host.cpuPercent).toEqual(expect.any(Number));
    // the stopped container is not sampled
    expect(second!.containers.map((c) => c.containerId).sort()).toEqual(engine.ids.slice(1).sort());
    expect(first!.containers.every((c) => c.cpuPercent === null)).toBe(true);
    expect(second!.containers.every((c) => typeof c.cpuPercent === 'number' && c.memoryUsedBytes > 0 && c.memoryLimitBytes !== null)).toBe(true);
    expect(sampler.count).toBeGreaterThanOrEqual(2);
  });
});
