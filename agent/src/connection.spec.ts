import { createServer } from 'node:net';
import type { MachineFacts } from '@kapitan/shared';
import { AgentConnection, agentSocketTarget, isCredentialRefusal, type AgentConnectionOptions } from './connection';
import { FakeKapitanServer } from './test-support/fake-server';
import { newId, nextEvent, waitFor } from './test-support/wait';

const facts: MachineFacts = {
  hostname: 'test-host',
  os: 'Test OS',
  platform: 'linux',
  kernel: '6.0.0',
  arch: 'x64',
  cpus: 2,
  memoryBytes: 1024,
  agentVersion: '0.1.0',
  dockerAvailable: false,
};

let server: FakeKapitanServer;
const connections: AgentConnection[] = [];

beforeEach(async () => {
  server = await FakeKapitanServer.start();
});
afterEach(async () => {
  for (const c of connections.splice(0)) c.stop();
  await server.close();
});

function connect(credential: string, o: Partial<AgentConnectionOptions> = {}): AgentConnection {
  const c = new AgentConnection({ serverUrl: server.url, credential, facts: () => facts, maxBackoffMs: 100, ...o });
  connections.push(c);
  c.start();
  return c;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe('helpers', () => {
  it('targets the /agent namespace on the server origin', () => {
    expect(agentSocketTarget('https://k.example.com')).toEqual({ url: 'https://k.example.com/agent', path: '/socket.io' });
    expect(agentSocketTarget('http://h:8080/kapitan/')).toEqual({ url: 'http://h:8080/agent', path: '/kapitan/socket.io' });
    expect(() => agentSocketTarget('ftp://h')).toThrow(/http/);
  });

  it('recognises a refused credential', () => {
    const e = Object.assign(new Error('nope'), { data: { code: 'unauthenticated' } });
    expect(isCredentialRefusal(e)).toBe(true);
    expect(isCredentialRefusal(new Error('machine credential revoked'))).toBe(true);
    expect(isCredentialRefusal(new Error('websocket error'))).toBe(false);
    expect(isCredentialRefusal(new Error('timeout'))).toBe(false);
  });
});

describe('AgentConnection', () => {
  it('says hello with facts and active executions, then sends heartbeats', async () => {
    const machineId = newId();
    server.addMachine('cred-1', machineId);
    const active = [newId()];
    const c = new AgentConnection({
      serverUrl: server.url,
      credential: 'cred-1',
      facts: async () => facts,
      activeExecutionIds: () => active,
      heartbeatIntervalMs: 30,
    });
    connections.push(c);
    const ready = nextEvent<[{ machineId: string }]>(c, 'ready');
    c.start();
    expect((await ready)[0].machineId).toBe(machineId);
    expect(c.ready).toBe(true);
    expect(server.hellos).toEqual([{ facts, activeExecutionIds: active }]);
    await waitFor(() => server.heartbeats >= 3, '3 heartbeats');
    const hb = server.received.find((r) => r.event === 'agent:heartbeat')!.payload as { at: string; load1: number };
    expect(typeof hb.at).toBe('string');
    expect(hb.load1).toBeGreaterThanOrEqual(0);
  });

  it('reconnects after the server drops the connection', async () => {
    server.addMachine('cred-2', newId());
    const c = connect('cred-2');
    await nextEvent(c, 'ready');
    const down = nextEvent<[string]>(c, 'down');
    const retry = nextEvent<[number]>(c, 'retry');
    const again = nextEvent(c, 'ready', 5000);
    server.kickAll();
    expect((await down)[0]).toBe('io server disconnect');
    expect((await retry)[0]).toBeLessThanOrEqual(100);
    await again;
    expect(server.hellos).toHaveLength(2);
  });

  it("redials at once after the server's server:draining, without the backoff a drop earned", async () => {
    server.addMachine('cred-drain', newId());
    // A backoff far above the drain spread: only the draining notice can make the redial this quick.
    const c = connect('cred-drain', { maxBackoffMs: 60_000, drainSpreadMs: 50, stableAfterMs: 60_000 });
    await nextEvent(c, 'ready');
    // A plain drop first: its retry is a backoff delay (0.5–2 s at the start).
    let retry = nextEvent<[number]>(c, 'retry');
    server.kickAll();
    expect((await retry)[0]).toBeGreaterThanOrEqual(500);
    await nextEvent(c, 'ready', 10_000);
    retry = nextEvent<[number]>(c, 'retry');
    const down = nextEvent<[string]>(c, 'down');
    const again = nextEvent(c, 'ready', 5000);
    server.drainAll();
    expect((await down)[0]).toBe('io server disconnect');
    expect((await retry)[0]).toBeLessThanOrEqual(50);
    await again;
    // Only that one redial is quick: a drop after it backs off again.
    retry = nextEvent<[number]>(c, 'retry');
    server.kickAll();
    expect((await retry)[0]).toBeGreaterThanOrEqual(500);
    expect(server.hellos).toHaveLength(3);
  });

  it("comes back when a busy server said, without the refusal growing its backoff", async () => {
    server.addMachine('cred-busy', newId());
    // rng 0.5: backoff steps of 1,250, 1,875, 2,812 … ms; a hint of 40 ms is waited 40 × (0.5 + 0.5).
    const c = connect('cred-busy', { maxBackoffMs: 60_000, stableAfterMs: 60_000, rng: () => 0.5 });
    const delays: number[] = [];
    c.on('retry', (d) => delays.push(d));
    server.busyFor(3, 40);
    await nextEvent(c, 'ready', 5000);
    expect(delays).toEqual([40, 40, 40]);
    expect(c.attemptCount).toBe(4);
    // The first failure after them is the backoff's first step, as if the busy answers had not been.
    const retry = nextEvent<[number]>(c, 'retry');
    server.kickAll();
    expect((await retry)[0]).toBe(1250);
  });

  it('keeps retrying with capped backoff when the credential is refused, and never gets in', async () => {
    const c = connect('not-a-credential', { maxBackoffMs: 50 });
    let readies = 0;
    c.on('ready', () => readies++);
    const delays: number[] = [];
    c.on('retry', (d) => delays.push(d));
    let refusals = 0;
    c.on('refused', () => refusals++);
    await waitFor(() => refusals >= 4, '4 refused handshakes');
    expect(readies).toBe(0);
    expect(server.hellos).toHaveLength(0);
    expect(delays.every((d) => d <= 50)).toBe(true);
    expect(c.attemptCount).toBeGreaterThanOrEqual(4);
  });

  it('a revoked machine is dropped and stays out', async () => {
    server.addMachine('cred-3', newId());
    const c = connect('cred-3', { maxBackoffMs: 50 });
    await nextEvent(c, 'ready');
    let refusals = 0;
    c.on('refused', () => refusals++);
    let readies = 0;
    c.on('ready', () => readies++);
    server.revoke('cred-3');
    await waitFor(() => refusals >= 3, '3 refused handshakes after revocation');
    expect(readies).toBe(0);
    expect(c.ready).toBe(false);
  });

  /** A clock made of another connection's refused retries: lets time pass for the one under test without a sleep. */
  const retriesOfAnother = async (n: number) => {
    const clock = connect('never-valid', { maxBackoffMs: 20 });
    let retries = 0;
    clock.on('retry', () => retries++);
    await waitFor(() => retries >= n, `${n} retries of another connection`);
    return clock;
  };

  it("stops for good on the server's agent:revoked, with its reason, and never dials again", async () => {
    server.addMachine('cred-r1', newId());
    const c = connect('cred-r1', { maxBackoffMs: 20 });
    await nextEvent(c, 'ready');
    let retries = 0;
    c.on('retry', () => retries++);
    const revoked = nextEvent<[string]>(c, 'revoked', 5000);
    server.revokeForGood('cred-r1', 'the project of this machine was deleted');
    expect(await revoked).toEqual(['the project of this machine was deleted']);
    expect(c.revoked).toBe('the project of this machine was deleted');
    expect(c.ready).toBe(false);
    const handshakes = server.handshakes;
    const clock = await retriesOfAnother(5); // well past this connection's 20 ms backoff
    expect(retries).toBe(0);
    expect(server.handshakes - handshakes).toBe(clock.attemptCount); // the other connection's, none of this one's
    c.start(); // a revoked connection does not start again either
    expect(c.attemptCount).toBe(1);
  });

  it('a handshake refused with machine_revoked is final: revoked at the first attempt, no retry', async () => {
    server.revokedForGood.add('cred-r2');
    const c = connect('cred-r2', { maxBackoffMs: 20 });
    const [reason] = await nextEvent<[string]>(c, 'revoked', 5000);
    expect(reason).toMatch(/enrol it again/);
    await retriesOfAnother(5);
    expect(c.attemptCount).toBe(1);
  });

  it('an ack carrying machine_revoked (a report that raced the drop) is final too', async () => {
    server.addMachine('cred-r3', newId());
    server.ackPolicy = (event) => (event === 'agent:heartbeat' ? { ok: false, error: { code: 'machine_revoked', message: 'deleted with its project' } } : undefined);
    const c = connect('cred-r3', { heartbeatIntervalMs: 20, maxBackoffMs: 20 });
    const [reason] = await nextEvent<[string]>(c, 'revoked', 5000);
    expect(reason).toBe('deleted with its project');
    await retriesOfAnother(5);
    expect(c.attemptCount).toBe(1);
  });

  it('waits for a server that is not up yet', async () => {
    const port = await freePort();
    await server.close();
    const c = new AgentConnection({ serverUrl: `http://127.0.0.1:${port}`, credential: 'cred-4', facts: () => facts, maxBackoffMs: 50 });
    connections.push(c);
    const errors: boolean[] = [];
    c.on('connectError', (_e, refused) => errors.push(refused));
    c.start();
    await waitFor(() => errors.length >= 2, 'two failed attempts');
    expect(errors.every((r) => r === false)).toBe(true);
    server = await FakeKapitanServer.start(port);
    server.addMachine('cred-4', newId());
    await nextEvent(c, 'ready', 5000);
  });

  it('redials when heartbeats go unacknowledged', async () => {
    server.addMachine('cred-5', newId());
    let dropHeartbeats = true;
    server.ackPolicy = (event) => (event === 'agent:heartbeat' && dropHeartbeats ? 'drop' : undefined);
    const c = connect('cred-5', { heartbeatIntervalMs: 30 });
    await nextEvent(c, 'ready');
    const [reason] = await nextEvent<[string]>(c, 'down', 5000);
    expect(reason).toBe('heartbeats not acknowledged');
    dropHeartbeats = false;
    await nextEvent(c, 'ready', 5000);
  });

  it('redials when the hello is refused', async () => {
    server.addMachine('cred-6', newId());
    let refuse = 2;
    server.ackPolicy = (event) =>
      event === 'agent:hello' && refuse-- > 0 ? { ok: false, error: { code: 'service_unavailable', message: 'try later' } } : undefined;
    const c = connect('cred-6');
    await nextEvent(c, 'ready', 5000);
    expect(c.attemptCount).toBe(3);
  });

  it('grows the delay while connections are short-lived and starts over after a stable one', async () => {
    server.addMachine('cred-7', newId());
    const c = connect('cred-7', { maxBackoffMs: 60_000, rng: () => 0.1, stableAfterMs: 200 });
    const delays: number[] = [];
    c.on('retry', (d) => delays.push(d));
    await nextEvent(c, 'ready');
    // short-lived: dropped at once
    server.kickAll();
    await nextEvent(c, 'ready', 5000);
    server.kickAll();
    await nextEvent(c, 'ready', 5000);
    expect(delays).toEqual([650, 715]);
    // stable: up for longer than stableAfterMs
    await new Promise((r) => setTimeout(r, 300));
    server.kickAll();
    await nextEvent(c, 'ready', 5000);
    expect(delays).toEqual([650, 715, 650]);
  });
});
