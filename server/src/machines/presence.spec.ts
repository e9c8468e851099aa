/**
 * Presence on both databases: online from a hello, offline only from the
 * socket that holds the machine, heartbeats written in bulk, and the sweep
 * that finds machines whose holder went silent (threat model T26, T30).
 */
import { AgentEvents, PRESENCE, type AgentHelloAck, type MachineFacts, type ReportedPolicy } from '@kapitan/shared';
import { In, Repository } from 'typeorm';
import type { DomainEvents } from '../common/domain-events';
import { DomainEventsService } from '../common/events.service';
import { createTestApp, describeBothDatabases, TestApp, waitFor } from '../testing/test-app';
import { closeSockets, connectAgent, emitWithAck, enrolMachine, FACTS, helloBody, setupProject, type SpecProject } from '../testing/sockets';
import { MachineEntity } from './machine.entity';
import { PresenceService } from './presence.service';

describeBothDatabases('presence', (database) => {
  let t: TestApp;
  let p: SpecProject;
  let presence: PresenceService;
  let machines: Repository<MachineEntity>;
  const updates: DomainEvents['machine.updated'][] = [];

  beforeAll(async () => {
    t = await createTestApp({ database });
    p = await setupProject(t);
    presence = t.app.get(PresenceService);
    machines = t.db.getRepository(MachineEntity);
    t.app.get(DomainEventsService).on('machine.updated', (e) => void updates.push(e));
  });
  afterEach(() => closeSockets());
  afterAll(() => t?.close());

  const facts: MachineFacts = { ...FACTS, hostname: 'renamed-host' };
  const online = async () => {
    const { machineId } = await enrolMachine(t, p);
    await presence.markOnline({ machineId, projectId: p.projectId }, null, 'socket-1', facts);
    return machineId;
  };

  test("a hello marks the machine online with its facts and announces it; a revoked machine's does nothing", async () => {
    const id = await online();
    expect(await machines.findOneByOrFail({ id })).toMatchObject({ status: 'online', connectionId: 'socket-1', hostname: 'renamed-host', nodeId: t.config.nodeId });
    expect(updates.at(-1)).toMatchObject({ projectId: p.projectId, machine: { id, status: 'online' } });

    const { machineId: revoked } = await enrolMachine(t, p);
    await machines.update({ id: revoked }, { revokedAt: new Date() });
    expect(await presence.markOnline({ machineId: revoked, projectId: p.projectId }, null, 'socket-9', facts)).toBeNull();
    expect((await machines.findOneByOrFail({ id: revoked })).status).toBe('offline');
  });

  test('the hellos of one turn are written together: each online with its own facts and socket, a revoked one not, a repeated machine as its last hello', async () => {
    const ids = await Promise.all(Array.from({ length: 12 }, async () => (await enrolMachine(t, p)).machineId));
    const revoked = ids[3]!;
    await machines.update({ id: revoked }, { revokedAt: new Date() });
    const policy: ReportedPolicy = {
      path: '/etc/kapitan/policy.json',
      found: true,
      sha256: 'a'.repeat(64),
      effective: { scripts: { enabled: true, allowSha256: null }, deploys: { enabled: false, pathPrefixes: [] }, docker: { enabled: true, images: null }, readOnly: false },
    };
    updates.length = 0;
    const written = await Promise.all([
      ...ids.map((machineId, i) =>
        presence.markOnline({ machineId, projectId: p.projectId }, { labels: {}, createdAt: new Date() }, `turn-${i}`, { ...facts, hostname: `host-${i}` }, i === 5 ? policy : null),
      ),
      // The same machine again in the same turn, on a newer socket: that one holds it.
      presence.markOnline({ machineId: ids[0]!, projectId: p.projectId }, null, 'turn-0-newer', { ...facts, hostname: 'host-0-newer' }),
    ]);
    expect(written[0]).toBeNull(); // superseded in its own turn
    expect(written[3]).toBeNull(); // revoked
    expect(written.at(-1)).toMatchObject({ id: ids[0], status: 'online', hostname: 'host-0-newer' });
    const rows = new Map((await machines.find({ where: { id: In(ids) } })).map((m) => [m.id, m]));
    ids.forEach((id, i) => {
      const m = rows.get(id)!;
      if (i === 3) return expect(m).toMatchObject({ status: 'offline', connectionId: null });
      if (i === 0) return expect(m).toMatchObject({ status: 'online', connectionId: 'turn-0-newer', hostname: 'host-0-newer' });
      expect(m).toMatchObject({ status: 'online', connectionId: `turn-${i}`, hostname: `host-${i}`, nodeId: t.config.nodeId, facts: { ...facts, hostname: `host-${i}` } });
      expect(m.policy).toEqual(i === 5 ? policy : null);
      expect(written[i]).toMatchObject({ id, status: 'online', hostname: `host-${i}` });
    });
    // Announced once per machine written, never for the revoked or the superseded hello.
    expect(updates.map((u) => u.machine.id).sort()).toEqual(ids.filter((id) => id !== revoked).sort());
  });

  test("a socket's offline waits for its hello's online still on its way: the machine ends offline", async () => {
    const { machineId } = await enrolMachine(t, p);
    // Same turn: the online is queued for the next one, the offline comes right behind it.
    const on = presence.markOnline({ machineId, projectId: p.projectId }, null, 'brief-socket', facts);
    const off = presence.markOffline(machineId, 'brief-socket');
    await Promise.all([on, off]);
    expect(await machines.findOneByOrFail({ id: machineId })).toMatchObject({ status: 'offline', connectionId: null });
  });

  test("only the socket that holds the machine marks it offline: an older socket's late disconnect changes nothing", async () => {
    const id = await online();
    await presence.markOnline({ machineId: id, projectId: p.projectId }, null, 'socket-2', facts); // a newer socket took over
    await presence.markOffline(id, 'socket-1');
    expect((await machines.findOneByOrFail({ id })).status).toBe('online');
    await presence.markOffline(id, 'socket-2');
    expect(await machines.findOneByOrFail({ id })).toMatchObject({ status: 'offline', connectionId: null, nodeId: null });
  });

  test('heartbeats are gathered and written in one go; they never bring an offline machine back', async () => {
    const a = await online();
    const b = await online();
    const off = await online();
    const old = new Date(Date.now() - 60_000);
    await machines.update({ id: In([a, b, off]) }, { lastSeenAt: old });
    await presence.markOffline(off, 'socket-1');
    for (const id of [a, b, a, off]) presence.heartbeat(id, 'socket-1');
    await presence.flushHeartbeats();
    for (const id of [a, b]) expect((await machines.findOneByOrFail({ id })).lastSeenAt!.getTime()).toBeGreaterThan(old.getTime());
    expect((await machines.findOneByOrFail({ id: off })).status).toBe('offline');
  });

  test('the sweep marks offline a machine whose holder went silent past the threshold, and only it', async () => {
    const silent = await online();
    const alive = await online();
    await machines.update({ id: silent }, { lastSeenAt: new Date(Date.now() - PRESENCE.offlineAfterMs - 5_000) });
    updates.length = 0;
    await presence.sweepStale();
    expect((await machines.findOneByOrFail({ id: silent })).status).toBe('offline');
    expect((await machines.findOneByOrFail({ id: alive })).status).toBe('online');
    expect(updates.map((u) => [u.machine.id, u.machine.status])).toEqual([[silent, 'offline']]);
    await presence.sweepStale(); // idempotent: nothing more announced
    expect(updates).toHaveLength(1);
  });

  test('running work is lost only for machines offline longer than asked, or revoked', async () => {
    const recent = await online();
    await presence.markOffline(recent, 'socket-1');
    const longGone = await online();
    await presence.markOffline(longGone, 'socket-1');
    await machines.update({ id: longGone }, { lastSeenAt: new Date(Date.now() - 600_000) });
    const stillOnline = await online();
    const revoked = await online();
    await machines.update({ id: revoked }, { revokedAt: new Date() });
    const gone = await presence.offlineSince([recent, longGone, stillOnline, revoked], 300);
    expect([...gone].sort()).toEqual([longGone, revoked].sort());
  });

  /** A real agent socket that said hello: the machine, its socket id as the row holds it, and a heartbeat to send. */
  async function connected() {
    const { machineId, credential } = await enrolMachine(t, p);
    const socket = await connectAgent(t.url, credential);
    expect((await emitWithAck<AgentHelloAck>(socket, AgentEvents.hello, helloBody())).ok).toBe(true);
    const { connectionId } = await machines.findOneByOrFail({ id: machineId });
    const beat = async () => expect((await emitWithAck(socket, AgentEvents.heartbeat, { at: new Date().toISOString() })).ok).toBe(true);
    return { machineId, socket, connectionId, beat };
  }

  test('a presence row gone wrong while the agent stays connected (offline, another connection, another node) is right again at the next heartbeat', async () => {
    const offline = await connected();
    const stolen = await connected();
    const untouched = await connected();
    await machines.update({ id: offline.machineId }, { status: 'offline', connectionId: null, nodeId: null });
    await machines.update({ id: stolen.machineId }, { connectionId: 'a-socket-long-gone', nodeId: 'a-dead-node' });
    updates.length = 0;
    for (const m of [offline, stolen, untouched]) await m.beat();
    await presence.flushHeartbeats();
    for (const m of [offline, stolen, untouched]) {
      expect(await machines.findOneByOrFail({ id: m.machineId })).toMatchObject({ status: 'online', connectionId: m.connectionId, nodeId: t.config.nodeId });
    }
    // The dashboard hears of the two that changed, and only of them.
    expect(updates.map((u) => [u.machine.id, u.machine.status]).sort()).toEqual([[offline.machineId, 'online'], [stolen.machineId, 'online']].sort());
  });

  test("a heartbeat never takes the machine from a newer socket, nor from a revoked machine, nor for a socket that closed", async () => {
    const older = await connected();
    // A newer socket of the same machine said hello elsewhere (another node): a later connectedAt, its own connection.
    await machines.update({ id: older.machineId }, { connectionId: 'newer-socket', nodeId: 'node-b', connectedAt: new Date(Date.now() + 60_000) });
    await older.beat();
    const revoked = await connected();
    await machines.update({ id: revoked.machineId }, { status: 'offline', revokedAt: new Date() });
    await revoked.beat();
    await presence.flushHeartbeats();
    expect(await machines.findOneByOrFail({ id: older.machineId })).toMatchObject({ connectionId: 'newer-socket', nodeId: 'node-b' });
    expect((await machines.findOneByOrFail({ id: revoked.machineId })).status).toBe('offline');

    const closed = await connected();
    presence.heartbeat(closed.machineId, closed.connectionId!); // gathered, then its socket closes before the flush
    closed.socket.close();
    await waitFor('the socket to be marked offline', async () => ((await machines.findOneByOrFail({ id: closed.machineId })).status === 'offline') || undefined, 5_000);
    presence.heartbeat(closed.machineId, closed.connectionId!); // a late one of the closed socket
    await presence.flushHeartbeats();
    expect((await machines.findOneByOrFail({ id: closed.machineId })).status).toBe('offline');
  });
});
