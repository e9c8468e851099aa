/** Reading containers from the engine into the shared `Container` shape, cut to the protocol's bounds. */
import { CONTAINER_LIMITS, ContainerStateSchema, type Container, type ContainerHealth, type ContainerPort } from '@kapitan/shared';
import type Dockerode from 'dockerode';
import { statusCodeOf } from './docker-target';

const cut = (s: string | undefined | null, max: number): string => {
  const v = (s ?? '').replace(/\0/g, '');
  return v.length > max ? v.slice(0, max) : v;
};

/** Docker's "never" is year 1. */
function isoOrNull(s: string | undefined | null): string | null {
  if (!s || s.startsWith('0001-')) return null;
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

function labelsOf(raw: Record<string, string> | undefined | null): Record<string, string> {
  const out: Record<string, string> = {};
  let n = 0;
  for (const [k, v] of Object.entries(raw ?? {})) {
    if (n >= CONTAINER_LIMITS.dockerLabelsMax) break;
    const key = cut(k, CONTAINER_LIMITS.dockerLabelKeyMax);
    if (!key) continue;
    out[key] = cut(v, CONTAINER_LIMITS.dockerLabelValueMax);
    n++;
  }
  return out;
}

function portsOf(raw: Dockerode.Port[] | undefined): ContainerPort[] {
  return (raw ?? []).slice(0, CONTAINER_LIMITS.portsMax).map((p) => ({
    privatePort: p.PrivatePort,
    publicPort: typeof p.PublicPort === 'number' && p.PublicPort > 0 ? p.PublicPort : null,
    protocol: p.Type === 'udp' ? 'udp' : p.Type === 'sctp' ? 'sctp' : 'tcp',
    ip: p.IP ? cut(p.IP, 64) : null,
  }));
}

function healthOf(info: Dockerode.ContainerInspectInfo): ContainerHealth {
  const s = (info.State as { Health?: { Status?: string } }).Health?.Status;
  return s === 'starting' || s === 'healthy' || s === 'unhealthy' ? s : 'none';
}

export function toContainer(listed: Dockerode.ContainerInfo, info: Dockerode.ContainerInspectInfo): Container {
  const state = ContainerStateSchema.safeParse(info.State.Status);
  const running = info.State.Running;
  return {
    id: info.Id.toLowerCase(),
    name: cut(info.Name.replace(/^\//, ''), CONTAINER_LIMITS.nameMax),
    image: cut(listed.Image || info.Config.Image, CONTAINER_LIMITS.imageMax),
    imageId: info.Image ? cut(info.Image, 100) : null,
    state: state.success ? state.data : 'dead',
    status: cut(listed.Status, CONTAINER_LIMITS.statusMax),
    health: healthOf(info),
    ports: portsOf(listed.Ports),
    labels: labelsOf(listed.Labels ?? info.Config.Labels),
    createdAt: isoOrNull(info.Created) ?? new Date(listed.Created * 1000).toISOString(),
    startedAt: isoOrNull(info.State.StartedAt),
    finishedAt: running ? null : isoOrNull(info.State.FinishedAt),
    exitCode: running ? null : info.State.ExitCode,
    restartCount: Math.max(0, info.RestartCount ?? 0),
  };
}

/** Map with at most `limit` calls in flight. */
async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * The containers as they are now: all of them, or those among `ids` that
 * still exist. One list call (status text, ports, labels) plus one inspect
 * per container (health, restart count, times).
 */
export async function readContainers(docker: Dockerode, ids?: readonly string[]): Promise<Container[]> {
  if (ids && ids.length === 0) return [];
  const listed = await docker.listContainers({ all: true, ...(ids ? { filters: { id: [...ids] } } : {}) });
  const wanted = ids ? new Set(ids) : null;
  const rows = await mapLimit(listed, 8, async (c) => {
    if (wanted && !wanted.has(c.Id.toLowerCase())) return null; // the id filter matches prefixes
    try {
      return toContainer(c, await docker.getContainer(c.Id).inspect());
    } catch (err) {
      if (statusCodeOf(err) === 404) return null; // removed between list and inspect
      throw err;
    }
  });
  return rows.filter((r): r is Container => r !== null);
}
