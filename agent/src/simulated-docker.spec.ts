/**
 * The in-memory engine of simulated agents, behind the real supervisor: what
 * reaches the server must be the protocol's own messages (checked with the
 * shared schemas), a restart must become one patch with the container as it
 * is now, and a socket path that does not exist must not matter.
 */
import { EventEmitter } from 'node:events';
import { ContainersChangedSchema, ContainersSnapshotSchema, DockerStatusSchema, type AgentToServerEventMap } from '@kapitan/shared';
import { ContainerSupervisor, type ServerLink } from './containers/supervisor';
import { SimulatedDockerEngine } from './simulated-docker';
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
