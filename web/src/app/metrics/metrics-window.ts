import type { ContainerMetricsPoint, HostMetricsPoint, LiveMetricsSampleEvent } from '@kapitan/shared';

/** The last `windowMs` of a machine's samples: history from REST, then live samples appended in order. */
export interface MetricsWindow {
  host: HostMetricsPoint[];
  containers: Map<string, ContainerMetricsPoint[]>;
}

export const emptyWindow = (): MetricsWindow => ({ host: [], containers: new Map() });

/** A new window with the live sample appended and everything older than `now - windowMs` dropped. */
export function appendSample(w: MetricsWindow, e: LiveMetricsSampleEvent, now: number, windowMs: number): MetricsWindow {
  const cutoff = now - windowMs;
  const keep = <T extends { at: string }>(points: T[]) => points.filter((p) => Date.parse(p.at) >= cutoff);
  const lastAt = w.host.at(-1)?.at;
  const host = lastAt && Date.parse(e.host.at) <= Date.parse(lastAt) ? w.host : [...w.host, e.host];
  const containers = new Map<string, ContainerMetricsPoint[]>();
  for (const [id, points] of w.containers) containers.set(id, points);
  for (const c of e.containers) {
    const { containerId, ...point } = c;
    containers.set(containerId, [...(containers.get(containerId) ?? []), point]);
  }
  for (const [id, points] of containers) {
    const kept = keep(points);
    if (kept.length) containers.set(id, kept);
    else containers.delete(id);
  }
  return { host: keep(host), containers };
}
