/**
 * A Docker engine in memory, for simulated agents: thousands of agents in one
 * process cannot each watch a real engine, yet the container path from a
 * Docker event to the server should be the agent's own (the supervisor's
 * debounce, queue, snapshot and patch messages). This answers the few calls
 * the supervisor makes — version, the event stream, list, inspect — from a
 * table of containers, and `restart()` / `stop()` / `start()` change a
 * container and write Docker's events for it, as dockerd would.
 *
 * Plug it in with `new Agent({ containers: true, supervisor: { engine } })`.
 */
import { createHash } from 'node:crypto';
import { PassThrough } from 'node:stream';
import type Dockerode from 'dockerode';

interface SimContainer {
  id: string;
  name: string;
  image: string;
  running: boolean;
  createdAt: Date;
  startedAt: Date;
  finishedAt: Date | null;
  exitCode: number;
  restartCount: number;
  labels: Record<string, string>;
}

export interface SimulatedDockerOptions {
  /** Containers the engine starts with, all running. */
  containers: number;
  /** Makes the ids and names unique per engine (e.g. the agent's index). */
  seed: string;
  image?: string;
}

const NEVER = '0001-01-01T00:00:00Z';

export class SimulatedDockerEngine {
  private readonly table = new Map<string, SimContainer>();
  private readonly streams = new Set<PassThrough>();

  constructor(options: SimulatedDockerOptions) {
    const now = new Date();
    for (let i = 0; i < options.containers; i++) {
      const id = createHash('sha256').update(`${options.seed}/${i}`).digest('hex');
      this.table.set(id, {
        id,
        name: `sim-${options.seed}-${i}`,
        image: options.image ?? 'registry.example.com/app/web:1.0',
        running: true,
        createdAt: now,
        startedAt: now,
        finishedAt: null,
        exitCode: 0,
        restartCount: 0,
        labels: { 'com.example.app': 'web', 'com.example.index': String(i) },
      });
    }
  }

  get ids(): string[] {
    return [...this.table.keys()];
  }

  /** The client the supervisor takes (`SupervisorOptions.engine`). */
  get client(): Dockerode {
    return this as unknown as Dockerode;
  }

  // ---------------------------------------------------------------- what dockerd would do

  /** `docker restart`: die, stop, start, restart events; `labels` are merged in first (benchmarks stamp them). */
  restart(id: string, labels: Record<string, string> = {}): void {
    const c = this.must(id);
    Object.assign(c.labels, labels);
    c.restartCount++;
    c.startedAt = new Date();
    c.running = true;
    this.event(c, 'die');
    this.event(c, 'stop');
    this.event(c, 'start');
    this.event(c, 'restart');
  }

  stop(id: string, labels: Record<string, string> = {}): void {
    const c = this.must(id);
    Object.assign(c.labels, labels);
    c.running = false;
    c.finishedAt = new Date();
    c.exitCode = 0;
    this.event(c, 'die');
    this.event(c, 'stop');
  }

  start(id: string, labels: Record<string, string> = {}): void {
    const c = this.must(id);
    Object.assign(c.labels, labels);
    c.running = true;
    c.startedAt = new Date();
    this.event(c, 'start');
  }

  /** Ends every event stream, as a stopping dockerd does. */
  close(): void {
    for (const s of this.streams) s.end();
    this.streams.clear();
  }

  // ---------------------------------------------------------------- the Dockerode subset

  async version(): Promise<{ Version: string }> {
    return { Version: 'simulated' };
  }

  async getEvents(): Promise<NodeJS.ReadableStream> {
    const s = new PassThrough();
    this.streams.add(s);
    s.on('close', () => this.streams.delete(s));
    return s;
  }

  /** How many times the containers were listed: a test waits on a read it cannot see otherwise. */
  listCalls = 0;

  async listContainers(opts: { all?: boolean; filters?: { id?: string[] } } = {}): Promise<Dockerode.ContainerInfo[]> {
    this.listCalls++;
    const wanted = opts.filters?.id;
    const out: Dockerode.ContainerInfo[] = [];
    for (const c of this.table.values()) {
      if (wanted && !wanted.some((w) => c.id.startsWith(w))) continue;
      if (!opts.all && !c.running) continue;
      out.push({
        Id: c.id,
        Names: [`/${c.name}`],
        Image: c.image,
        ImageID: `sha256:${'0'.repeat(64)}`,
        Command: 'serve',
        Created: Math.floor(c.createdAt.getTime() / 1000),
        Ports: [{ IP: '0.0.0.0', PrivatePort: 80, PublicPort: 0, Type: 'tcp' }],
        Labels: { ...c.labels },
        State: c.running ? 'running' : 'exited',
        Status: c.running ? 'Up 2 minutes' : `Exited (${c.exitCode}) 1 second ago`,
        HostConfig: { NetworkMode: 'bridge' },
        NetworkSettings: { Networks: {} },
        Mounts: [],
      });
    }
    return out;
  }

  getContainer(id: string): { inspect(): Promise<Dockerode.ContainerInspectInfo>; stats(): Promise<unknown> } {
    return {
      /** One-shot stats (what the metrics reader asks for): counters that grow at a steady few per cent of a core. */
      stats: async () => {
        const c = this.table.get(id.toLowerCase());
        if (!c) throw Object.assign(new Error(`No such container: ${id}`), { statusCode: 404 });
        const t = Date.now() - c.startedAt.getTime();
        return {
          cpu_stats: { cpu_usage: { total_usage: t * 1e6 * 0.05 }, system_cpu_usage: Date.now() * 1e6 * 2, online_cpus: 2 },
          memory_stats: { usage: 64 * 1024 * 1024, limit: 256 * 1024 * 1024, stats: { inactive_file: 4 * 1024 * 1024 } },
        };
      },
      inspect: async () => {
        const c = this.table.get(id.toLowerCase());
        if (!c) throw Object.assign(new Error(`No such container: ${id}`), { statusCode: 404 });
        return {
          Id: c.id,
          Name: `/${c.name}`,
          Image: `sha256:${'0'.repeat(64)}`,
          Created: c.createdAt.toISOString(),
          RestartCount: c.restartCount,
          Config: { Image: c.image, Labels: { ...c.labels } },
          State: {
            Status: c.running ? 'running' : 'exited',
            Running: c.running,
            StartedAt: c.startedAt.toISOString(),
            FinishedAt: c.finishedAt ? c.finishedAt.toISOString() : NEVER,
            ExitCode: c.exitCode,
          },
        } as unknown as Dockerode.ContainerInspectInfo;
      },
    };
  }

  private must(id: string): SimContainer {
    const c = this.table.get(id);
    if (!c) throw new Error(`no simulated container ${id}`);
    return c;
  }

  private event(c: SimContainer, action: string): void {
    const now = Date.now();
    const line = JSON.stringify({
      Type: 'container',
      Action: action,
      id: c.id,
      Actor: { ID: c.id, Attributes: { name: c.name, image: c.image } },
      time: Math.floor(now / 1000),
      timeNano: now * 1e6,
    });
    for (const s of this.streams) s.write(line + '\n');
  }
}
