import type { HostMetricsPoint, LiveMetricsSampleEvent } from '@kapitan/shared';
import { appendSample, emptyWindow } from './metrics-window';

const point = (at: string, cpuPercent = 1): HostMetricsPoint => ({
  at,
  cpuPercent,
  memoryUsedBytes: 1,
  memoryTotalBytes: 2,
  diskRootUsedBytes: 1,
  diskRootTotalBytes: 2,
  diskStateUsedBytes: 1,
  diskStateTotalBytes: 2,
  netRxBytesPerSec: 0,
  netTxBytesPerSec: 0,
  load1: 0,
  load5: 0,
  load15: 0,
});
const id = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';
const cid = 'a'.repeat(64);
const sample = (at: string, cpu = 1): LiveMetricsSampleEvent => ({
  projectId: id,
  machineId: id,
  host: point(at, cpu),
  containers: [{ containerId: cid, at, cpuPercent: cpu, memoryUsedBytes: 5, memoryLimitBytes: null }],
});

describe('the metrics window', () => {
  it('appends live samples in order, per container too, and drops what falls out of the window', () => {
    const t0 = Date.parse('2026-12-01T00:00:00Z');
    let w = emptyWindow();
    w = appendSample(w, sample('2026-12-01T00:00:00Z', 1), t0, 60_000);
    w = appendSample(w, sample('2026-12-01T00:00:30Z', 2), t0 + 30_000, 60_000);
    expect(w.host.map((p) => p.cpuPercent)).toEqual([1, 2]);
    expect(w.containers.get(cid)?.map((p) => p.cpuPercent)).toEqual([1, 2]);
    w = appendSample(w, sample('2026-12-01T00:01:10Z', 3), t0 + 70_000, 60_000);
    expect(w.host.map((p) => p.cpuPercent)).toEqual([2, 3]);
  });

  it('ignores a sample not newer than the last one (a history page that overlapped the live tail)', () => {
    const t0 = Date.parse('2026-12-01T00:00:00Z');
    let w = appendSample(emptyWindow(), sample('2026-12-01T00:00:10Z', 1), t0 + 10_000, 60_000);
    w = appendSample(w, sample('2026-12-01T00:00:05Z', 9), t0 + 10_000, 60_000);
    expect(w.host.map((p) => p.cpuPercent)).toEqual([1]);
  });
});
