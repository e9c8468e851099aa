/**
 * Metrics on both databases, with real sockets: an agent's samples are
 * stored (one per raw interval) and pushed live; watching a machine leases
 * the fast rate to its agent; an agent of project B can never file numbers
 * under project A's machine or containers (threat model T53); bad samples
 * are refused case by case and store nothing (T54); buckets are averaged and
 * whatever is older than its resolution's retention is gone.
 */
import { AgentEvents, LiveClientEvents, LiveServerEvents, ServerToAgentEvents, type Container, type HostMetrics } from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import type { Socket } from 'socket.io-client';
import { bearer, createTestApp, describeBothDatabases, expectError, expectValidationError, signupUser, TestApp, waitFor } from '../testing/test-app';
import { closeSockets, connectAgent, connectLive, emitWithAck, enrolMachine, helloBody, nextEvent, record, setupProject, SpecProject } from '../testing/sockets';
import { MetricsWatchService } from './metrics-watch.service';
import { MetricsService } from './metrics.service';

const hex = (c: string) => c.repeat(64);
const host = (over: Partial<HostMetrics> = {}): HostMetrics => ({
  cpuPercent: 25,
  memoryUsedBytes: 1_000_000,
  memoryTotalBytes: 4_000_000,
  diskRootUsedBytes: 10_000,
  diskRootTotalBytes: 100_000,
  diskStateUsedBytes: 20_000,
  diskStateTotalBytes: 200_000,
  netRxBytesPerSec: 100,
  netTxBytesPerSec: 50,
  load1: 0.5,
  load5: 0.4,
  load15: 0.3,
  ...over,
});
const sample = (over: Partial<HostMetrics> = {}, containers: { containerId: string; cpuPercent: number | null; memoryUsedBytes: number; memoryLimitBytes: number | null }[] = []) => ({
  at: new Date().toISOString(),
  host: host(over),
  containers,
});
const container = (id: string): Container => ({
  id,
  name: `c-${id.slice(0, 4)}`,
  image: 'busybox',
  imageId: null,
  state: 'running',
  status: 'Up',
  health: 'none',
  ports: [],
  labels: {},
  createdAt: '2026-12-01T10:00:00.000Z',
  startedAt: '2026-12-01T10:00:01.000Z',
  finishedAt: null,
  exitCode: null,
  restartCount: 0,
});

describeBothDatabases('metrics', (database) => {
  let t: TestApp;
  let a: SpecProject;
  let b: SpecProject;
  let ma: { machineId: string; credential: string };
  let mb: { machineId: string; credential: string };
  let agentA: Socket;
  let agentB: Socket;
  let liveA: Socket;
  let service: MetricsService;
  let stranger: { token: string };

  const count = async (table: string, machineId: string, resolution = 'raw'): Promise<number> =>
    Number((await t.db.query(`SELECT COUNT(*) AS n FROM ${table} WHERE machineId = '${machineId}' AND resolution = '${resolution}'`))[0].n);
  const all = async (table: string): Promise<number> => Number((await t.db.query(`SELECT COUNT(*) AS n FROM ${table}`))[0].n);

  beforeAll(async () => {
    t = await createTestApp({ database, env: { KAPITAN_METRICS_WATCH_INTERVAL_MS: '500', KAPITAN_METRICS_WATCH_LEASE_MS: '3000' } });
    service = t.app.get(MetricsService);
    a = await setupProject(t, 'a');
    b = await setupProject(t, 'b');
    ma = await enrolMachine(t, a);
    mb = await enrolMachine(t, b);
    stranger = await signupUser(t.http);
    agentA = await connectAgent(t.url, ma.credential);
    agentB = await connectAgent(t.url, mb.credential);
    expect((await emitWithAck(agentA, AgentEvents.hello, helloBody())).ok).toBe(true);
    expect((await emitWithAck(agentB, AgentEvents.hello, helloBody())).ok).toBe(true);
    // A runs container a; B runs container b
    expect(await emitWithAck(agentA, AgentEvents.containersSnapshot, { snapshotId: randomUUID(), containers: [container(hex('a'))], last: true })).toEqual({ ok: true });
    expect(await emitWithAck(agentB, AgentEvents.containersSnapshot, { snapshotId: randomUUID(), containers: [container(hex('b'))], last: true })).toEqual({ ok: true });
    liveA = await connectLive(t.url, a.owner.token);
    expect((await emitWithAck(liveA, LiveClientEvents.subscribeProject, { projectId: a.projectId })).ok).toBe(true);
  });
  afterAll(async () => {
    closeSockets();
    await t?.close();
  });

  test('a sample is stored under the socket’s machine, pushed to its watchers and the project, and read back over REST', async () => {
    expect((await emitWithAck(liveA, LiveClientEvents.subscribeMachineMetrics, { machineId: ma.machineId })).ok).toBe(true);
    const live = nextEvent<{ machineId: string; host: { cpuPercent: number }; containers: { containerId: string }[] }>(liveA, LiveServerEvents.metricsSample);
    const headline = nextEvent<{ machineId: string; cpuPercent: number }>(liveA, LiveServerEvents.hostMetrics);
    const c = { containerId: hex('a'), cpuPercent: 150, memoryUsedBytes: 5000, memoryLimitBytes: null };
    expect(await emitWithAck(agentA, AgentEvents.metricsSample, sample({ cpuPercent: 42 }, [c]))).toEqual({ ok: true });
    expect(await live).toMatchObject({ machineId: ma.machineId, host: { cpuPercent: 42 }, containers: [{ containerId: hex('a') }] });
    expect(await headline).toMatchObject({ machineId: ma.machineId, cpuPercent: 42 });
    expect(await count('host_metrics', ma.machineId)).toBe(1);
    expect(await count('container_metrics', ma.machineId)).toBe(1);

    const r = await t.http.get(`/api/machines/${ma.machineId}/metrics`).set(bearer(a.owner.token)).expect(200);
    expect(r.body).toMatchObject({ machineId: ma.machineId, resolution: 'raw', points: [{ cpuPercent: 42, memoryTotalBytes: 4_000_000, load15: 0.3 }] });
    const cr = await t.http.get(`/api/machines/${ma.machineId}/metrics/containers`).set(bearer(a.owner.token)).expect(200);
    expect(cr.body.series).toEqual([{ containerId: hex('a'), points: [expect.objectContaining({ cpuPercent: 150, memoryUsedBytes: 5000, memoryLimitBytes: null })] }]);
    const pc = await t.http.get(`/api/projects/${a.projectId}/metrics/cpu`).set(bearer(a.owner.token)).expect(200);
    expect(pc.body.series).toEqual([{ machineId: ma.machineId, points: [expect.objectContaining({ cpuPercent: 42 })] }]);
  });

  test('within a raw interval the next samples go live but are not stored', async () => {
    const seen = record(liveA, LiveServerEvents.metricsSample);
    for (let i = 0; i < 3; i++) expect(await emitWithAck(agentA, AgentEvents.metricsSample, sample({ cpuPercent: i }))).toEqual({ ok: true });
    await waitFor('three live samples', () => (seen.length >= 3 ? true : undefined));
    expect(await count('host_metrics', ma.machineId)).toBe(1);
  });

  test('watching leases the fast rate to the agent; a stranger cannot watch', async () => {
    const watch = nextEvent<{ intervalMs: number; leaseMs: number }>(agentA, ServerToAgentEvents.metricsWatch);
    const liveA2 = await connectLive(t.url, a.owner.token);
    expect((await emitWithAck(liveA2, LiveClientEvents.subscribeMachineMetrics, { machineId: ma.machineId })).ok).toBe(true);
    expect(await watch).toEqual({ intervalMs: 500, leaseMs: 3000 });
    // renewed while watched
    await nextEvent(agentA, ServerToAgentEvents.metricsWatch, () => true, 10_000);

    const s = await connectLive(t.url, stranger.token);
    const refused = await emitWithAck(s, LiveClientEvents.subscribeMachineMetrics, { machineId: ma.machineId });
    expect(refused).toMatchObject({ ok: false, error: { code: 'not_found' } });
    const unknown = await emitWithAck(s, LiveClientEvents.subscribeMachineMetrics, { machineId: randomUUID() });
    expect(unknown).toMatchObject({ ok: false, error: { code: 'not_found' } });
    const watchB = record(agentB, ServerToAgentEvents.metricsWatch);

    // everyone leaves: the node stops renewing
    const watching = t.app.get(MetricsWatchService);
    expect(await emitWithAck(liveA, LiveClientEvents.unsubscribeMachineMetrics, { machineId: ma.machineId })).toEqual({ ok: true });
    expect(watching.watching()).toContain(ma.machineId);
    liveA2.disconnect();
    await waitFor('the watch dropped', () => {
      watching.check();
      return watching.watching().includes(ma.machineId) ? undefined : true;
    });
    expect(watchB).toEqual([]);
  });

  test("an agent of project B can never write metrics of project A's machine or containers: refused, logged, nothing stored", async () => {
    service.forget(ma.machineId);
    service.forget(mb.machineId);
    const beforeA = [await count('host_metrics', ma.machineId), await count('container_metrics', ma.machineId)];
    const beforeB = await count('container_metrics', mb.machineId);
    // a machine id in the payload is refused by the schema
    const named = await emitWithAck(agentB, AgentEvents.metricsSample, { ...sample(), machineId: ma.machineId });
    expect(named).toMatchObject({ ok: false, error: { code: 'validation_failed' } });
    // A's container id from B's agent: B's host row, but no container row anywhere
    expect(await emitWithAck(agentB, AgentEvents.metricsSample, sample({}, [{ containerId: hex('a'), cpuPercent: 99, memoryUsedBytes: 1, memoryLimitBytes: null }]))).toEqual({ ok: true });
    expect([await count('host_metrics', ma.machineId), await count('container_metrics', ma.machineId)]).toEqual(beforeA);
    expect(await count('container_metrics', mb.machineId)).toBe(beforeB);
    expect(await count('host_metrics', mb.machineId)).toBe(1);
    // and B's own container is stored for B
    service.forget(mb.machineId);
    expect(await emitWithAck(agentB, AgentEvents.metricsSample, sample({}, [{ containerId: hex('b'), cpuPercent: 1, memoryUsedBytes: 1, memoryLimitBytes: 10 }]))).toEqual({ ok: true });
    expect(await count('container_metrics', mb.machineId)).toBe(beforeB + 1);
    // B's owner cannot read A's metrics
    await expectError(await t.http.get(`/api/machines/${ma.machineId}/metrics`).set(bearer(b.owner.token)), 404, 'not_found');
    await expectError(await t.http.get(`/api/projects/${a.projectId}/metrics/cpu`).set(bearer(stranger.token)), 404, 'not_found');
  });

  test.each([
    ['a NaN (JSON null) memory', sample({ memoryUsedBytes: NaN })],
    ['an infinite (JSON null) load', sample({ load1: Infinity })],
    ['a negative rate', sample({ netRxBytesPerSec: -1 })],
    ['CPU above 100 %', sample({ cpuPercent: 250 })],
    ['used above total', sample({ memoryUsedBytes: 5_000_000 })],
    ['a string number', { ...sample(), host: { ...host(), load5: '1' } }],
    ['an unknown field', { ...sample(), host: { ...host(), swap: 1 } }],
    ['a negative container memory', sample({}, [{ containerId: hex('a'), cpuPercent: 1, memoryUsedBytes: -1, memoryLimitBytes: null }])],
    ['a huge container array', sample({}, Array.from({ length: 501 }, (_, i) => ({ containerId: i.toString(16).padStart(64, '0'), cpuPercent: 1, memoryUsedBytes: 1, memoryLimitBytes: null })))],
    ['no host', { at: new Date().toISOString(), containers: [] }],
  ])('a sample with %s is refused and stores nothing', async (_name, bad) => {
    service.forget(ma.machineId);
    const before = [await all('host_metrics'), await all('container_metrics')];
    const r = await emitWithAck(agentA, AgentEvents.metricsSample, bad);
    expect(r).toMatchObject({ ok: false, error: { code: 'validation_failed' } });
    expect([await all('host_metrics'), await all('container_metrics')]).toEqual(before);
  });

  test('REST queries are validated: resolution, range, too many points, an unknown machine', async () => {
    const url = `/api/machines/${ma.machineId}/metrics`;
    expectValidationError(await t.http.get(`${url}?resolution=5m`).set(bearer(a.owner.token)), 'resolution');
    expectValidationError(await t.http.get(`${url}?from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z`).set(bearer(a.owner.token)), 'from');
    expectValidationError(await t.http.get(`${url}?from=yesterday`).set(bearer(a.owner.token)), 'from');
    expectValidationError(await t.http.get(`${url}?from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z&resolution=raw`).set(bearer(a.owner.token)), 'resolution');
    expectValidationError(await t.http.get(`${url}/containers?containerId=xyz`).set(bearer(a.owner.token)), 'containerId');
    await expectError(await t.http.get(`/api/machines/${randomUUID()}/metrics`).set(bearer(a.owner.token)), 404, 'not_found');
    const year = await t.http.get(`${url}?from=2025-12-01T00:00:00Z&to=2026-12-01T00:00:00Z`).set(bearer(a.owner.token)).expect(200);
    expect(year.body.resolution).toBe('1h');
  });

  test('buckets are averaged into 1 min and 1 h, and samples older than each retention are gone', async () => {
    const m = (await enrolMachine(t, a)).machineId;
    const MIN = 60_000;
    // a timeline of our own, in the future of everything stored so far
    const base = Date.now() + 30 * 24 * 3600_000;
    const t0 = base - (base % (3600_000)); // an hour boundary
    // 6 raw samples in minute 0 (cpu 10..60) and 6 in minute 1 (cpu 20)
    for (let i = 0; i < 6; i++) {
      service.forget(m);
      await service.record(m, a.projectId, { at: new Date().toISOString(), host: host({ cpuPercent: 10 * (i + 1) }), containers: [] }, t0 + i * 10_000);
      service.forget(m);
      await service.record(m, a.projectId, { at: new Date().toISOString(), host: host({ cpuPercent: 20 }), containers: [] }, t0 + MIN + i * 10_000);
    }
    expect(await count('host_metrics', m)).toBe(12);
    await service.maintain(t0 + 2 * MIN + 30_000);
    const minutes = (await t.db.query(`SELECT bucketAt, cpuPercent FROM host_metrics WHERE machineId = '${m}' AND resolution = '1m' ORDER BY bucketAt`)) as { bucketAt: string; cpuPercent: number }[];
    expect(minutes.map((r) => [Number(r.bucketAt) - t0, Number(r.cpuPercent)])).toEqual([
      [0, 35],
      [MIN, 20],
    ]);
    // a second run over the same time makes nothing twice
    await service.maintain(t0 + 2 * MIN + 40_000);
    expect(await count('host_metrics', m, '1m')).toBe(2);

    // past the hour: the hour bucket is the average of its minutes
    await service.maintain(t0 + 3600_000 + 2 * MIN);
    const hours = (await t.db.query(`SELECT bucketAt, cpuPercent FROM host_metrics WHERE machineId = '${m}' AND resolution = '1h'`)) as { bucketAt: string; cpuPercent: number }[];
    expect(hours.map((r) => [Number(r.bucketAt) - t0, Number(r.cpuPercent)])).toEqual([[0, 27.5]]);
    expect(await count('host_metrics', m)).toBe(12); // raw still within 48 h

    // (defaults: raw 48 h, 1 m 7 d, 1 h 365 d) 49 h later raw is gone, 1 m and 1 h remain; 15 days later the minutes are gone too; after a year and a day, everything
    await service.maintain(t0 + 49 * 3600_000);
    expect([await count('host_metrics', m), await count('host_metrics', m, '1m'), await count('host_metrics', m, '1h')]).toEqual([0, 2, 1]);
    await service.maintain(t0 + 15 * 24 * 3600_000);
    expect([await count('host_metrics', m, '1m'), await count('host_metrics', m, '1h')]).toEqual([0, 1]);
    await service.maintain(t0 + 366 * 24 * 3600_000);
    expect(await count('host_metrics', m, '1h')).toBe(0);
    // (the other machines' rows, being older, are gone with them)
    expect(await all('host_metrics')).toBe(0);
  });

  describe('batched writes', () => {
    const reading = { containerId: hex('a'), cpuPercent: 1, memoryUsedBytes: 1, memoryLimitBytes: null };

    test("one turn's samples of many machines are stored together; a machine's second sample of that turn is not stored twice", async () => {
      service.forget(ma.machineId);
      service.forget(mb.machineId);
      const before = [await count('host_metrics', ma.machineId), await count('container_metrics', ma.machineId), await count('host_metrics', mb.machineId)];
      const batches = service.batchesWritten;
      const results = await Promise.all([
        service.record(ma.machineId, a.projectId, sample({ cpuPercent: 11 }, [reading])),
        service.record(mb.machineId, b.projectId, sample({ cpuPercent: 12 })),
        service.record(ma.machineId, a.projectId, sample({ cpuPercent: 13 }, [reading])),
      ]);
      expect(results).toEqual([true, true, false]);
      expect(service.batchesWritten - batches).toBe(1);
      expect([await count('host_metrics', ma.machineId), await count('container_metrics', ma.machineId), await count('host_metrics', mb.machineId)]).toEqual([before[0]! + 1, before[1]! + 1, before[2]! + 1]);
      const cpu = (await t.db.query(`SELECT cpuPercent FROM host_metrics WHERE machineId = '${ma.machineId}' ORDER BY bucketAt DESC LIMIT 1`)) as { cpuPercent: number }[];
      expect(Number(cpu[0]!.cpuPercent)).toBe(11);
    });

    test('a sample the database refuses fails its own ack; its batch-mates are stored; the refused machine’s next sample is stored', async () => {
      await t.db.query(
        database === 'mysql'
          ? "CREATE TRIGGER poison_sample BEFORE INSERT ON host_metrics FOR EACH ROW BEGIN IF NEW.cpuPercent = 66.5 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'poisoned sample'; END IF; END"
          : "CREATE TRIGGER poison_sample BEFORE INSERT ON host_metrics WHEN NEW.cpuPercent = 66.5 BEGIN SELECT RAISE(ABORT, 'poisoned sample'); END",
      );
      try {
        service.forget(ma.machineId);
        service.forget(mb.machineId);
        const before = [await count('host_metrics', ma.machineId), await count('container_metrics', ma.machineId), await count('host_metrics', mb.machineId)];
        const results = await Promise.allSettled([
          service.record(ma.machineId, a.projectId, sample({ cpuPercent: 66.5 }, [reading])),
          service.record(mb.machineId, b.projectId, sample({ cpuPercent: 12 })),
        ]);
        expect(results[0]).toMatchObject({ status: 'rejected', reason: expect.objectContaining({ message: expect.stringMatching(/poisoned sample/) }) });
        expect(results[1]).toEqual({ status: 'fulfilled', value: true });
        expect([await count('host_metrics', ma.machineId), await count('container_metrics', ma.machineId), await count('host_metrics', mb.machineId)]).toEqual([before[0], before[1], before[2]! + 1]);
        // over the socket: the agent is told it was not stored
        const ack = await emitWithAck(agentA, AgentEvents.metricsSample, sample({ cpuPercent: 66.5 }));
        expect(ack).toMatchObject({ ok: false, error: { code: 'service_unavailable' } });
      } finally {
        await t.db.query('DROP TRIGGER poison_sample');
      }
      // the refusals did not count as stored: A's next sample, within the same interval, is stored
      const hostBefore = await count('host_metrics', ma.machineId);
      expect(await service.record(ma.machineId, a.projectId, sample({ cpuPercent: 20 }, [reading]))).toBe(true);
      expect(await count('host_metrics', ma.machineId)).toBe(hostBefore + 1);
    });
  });
});
