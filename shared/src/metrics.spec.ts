import { METRICS_LIMITS, MetricsQuerySchema, MetricsSampleSchema, MetricsWatchSchema } from './metrics';
import { agentToServerSchemas, liveServerToClientSchemas, serverToAgentSchemas } from './events';

const host = {
  cpuPercent: 12.5,
  memoryUsedBytes: 1_000,
  memoryTotalBytes: 4_000,
  diskRootUsedBytes: 10,
  diskRootTotalBytes: 100,
  diskStateUsedBytes: 10,
  diskStateTotalBytes: 100,
  netRxBytesPerSec: 1.5,
  netTxBytesPerSec: 0,
  load1: 0.5,
  load5: 0.25,
  load15: 0.1,
};
const cid = (n: number) => n.toString(16).padStart(64, '0');
const sample = (patch: Record<string, unknown> = {}, hostPatch: Record<string, unknown> = {}) => ({
  at: '2026-12-01T00:00:00.000Z',
  host: { ...host, ...hostPatch },
  containers: [{ containerId: cid(1), cpuPercent: 150, memoryUsedBytes: 10, memoryLimitBytes: null }],
  ...patch,
});

describe('metrics samples', () => {
  it('are the payload of metrics:sample, and metrics:watch leases the fast rate', () => {
    expect(agentToServerSchemas['metrics:sample']).toBe(MetricsSampleSchema);
    expect(serverToAgentSchemas['metrics:watch']).toBe(MetricsWatchSchema);
    expect(Object.keys(liveServerToClientSchemas)).toEqual(expect.arrayContaining(['metrics:sample', 'metrics:host']));
    expect(MetricsSampleSchema.safeParse(sample()).success).toBe(true);
    expect(MetricsSampleSchema.safeParse(sample({}, { cpuPercent: null, netRxBytesPerSec: null, netTxBytesPerSec: null })).success).toBe(true);
  });

  it.each([
    ['NaN CPU', { cpuPercent: NaN }],
    ['infinite rate', { netRxBytesPerSec: Infinity }],
    ['negative memory', { memoryUsedBytes: -1 }],
    ['CPU above 100 %', { cpuPercent: 100.1 }],
    ['fractional bytes', { diskRootUsedBytes: 1.5 }],
    ['bytes beyond what a double holds exactly', { memoryTotalBytes: 2 ** 60 }],
    ['used above total', { memoryUsedBytes: 5_000 }],
    ['disk used above total', { diskStateUsedBytes: 101 }],
    ['negative load', { load5: -0.1 }],
    ['a string number', { load1: '0.5' }],
    ['an unknown field', { swapBytes: 1 }],
  ])('refuse a host reading with %s', (_name, patch) => {
    expect(MetricsSampleSchema.safeParse(sample({}, patch)).success).toBe(false);
  });

  it('refuse bad container readings, duplicates and too many containers', () => {
    const c = { containerId: cid(1), cpuPercent: 1, memoryUsedBytes: 1, memoryLimitBytes: 2 };
    expect(MetricsSampleSchema.safeParse(sample({ containers: [{ ...c, cpuPercent: NaN }] })).success).toBe(false);
    expect(MetricsSampleSchema.safeParse(sample({ containers: [{ ...c, memoryUsedBytes: -5 }] })).success).toBe(false);
    expect(MetricsSampleSchema.safeParse(sample({ containers: [{ ...c, containerId: 'abc' }] })).success).toBe(false);
    expect(MetricsSampleSchema.safeParse(sample({ containers: [c, c] })).success).toBe(false);
    const many = Array.from({ length: METRICS_LIMITS.containersPerSampleMax + 1 }, (_, i) => ({ ...c, containerId: cid(i) }));
    expect(MetricsSampleSchema.safeParse(sample({ containers: many })).success).toBe(false);
    expect(MetricsSampleSchema.safeParse(sample({ containers: many.slice(1) })).success).toBe(true);
    expect(MetricsSampleSchema.safeParse(sample({ machineId: '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b' })).success).toBe(false);
  });

  it('bound the watch interval and lease', () => {
    expect(MetricsWatchSchema.safeParse({ intervalMs: 1000, leaseMs: 15_000 }).success).toBe(true);
    expect(MetricsWatchSchema.safeParse({ intervalMs: 0, leaseMs: 15_000 }).success).toBe(false);
    expect(MetricsWatchSchema.safeParse({ intervalMs: 1000, leaseMs: 10 ** 9 }).success).toBe(false);
  });

  it('queries: from before to, a known resolution, auto by default', () => {
    expect(MetricsQuerySchema.parse({})).toEqual({ resolution: 'auto' });
    expect(MetricsQuerySchema.safeParse({ from: '2026-12-02T00:00:00Z', to: '2026-12-01T00:00:00Z' }).success).toBe(false);
    expect(MetricsQuerySchema.safeParse({ resolution: '5m' }).success).toBe(false);
  });
});
