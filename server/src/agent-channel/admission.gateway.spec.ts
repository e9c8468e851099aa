/**
 * The handshake's line (AdmissionQueue) in the real app with real socket.io
 * clients: agents past the bound wait their turn on their open connection
 * and get in as the hellos ahead of them are answered; one that waited its
 * longest is told when to come back; one that hangs up, or is refused, gives
 * its place back.
 */
import { AGENT_NAMESPACE, AgentEvents, ErrorCode, type AgentHelloAck } from '@kapitan/shared';
import { io, type Socket } from 'socket.io-client';
import { createTestApp, describeBothDatabases, TestApp, waitFor } from '../testing/test-app';
import { closeSockets, connectAgent, emitWithAck, enrolMachine, helloBody, setupProject, type SpecProject } from '../testing/sockets';
import { AgentGateway } from './agent.gateway';

type Outcome = { connected: true } | { connected: false; data: { code: string; message: string; retryAfterMs?: number } };

describeBothDatabases('agent admission', (database) => {
  let t: TestApp;
  let p: SpecProject;
  const raw: Socket[] = [];

  beforeAll(async () => {
    // One handshake at a time; a line longer than 1.5 s is sent away.
    t = await createTestApp({ database, env: { KAPITAN_AGENT_ADMISSIONS: '1', KAPITAN_AGENT_ADMISSION_WAIT_SECONDS: '1.5' } });
    p = await setupProject(t, 'adm');
  });
  afterEach(async () => {
    closeSockets();
    for (const s of raw.splice(0)) s.close();
    // Every spec starts with an empty line and no slot taken.
    await waitFor('the admission line to empty', () => (line().inProgress === 0 && line().queued === 0) || undefined);
  });
  afterAll(() => t?.close());

  const line = (): { inProgress: number; queued: number } => {
    const q = t.app.get(AgentGateway).admission;
    return { inProgress: q.inProgress, queued: q.queued };
  };

  /** A connection attempt whose outcome is kept, so a spec can look at it while it waits. */
  function dial(credential: string): { socket: Socket; outcome: Promise<Outcome> } {
    const socket = io(`${t.url}${AGENT_NAMESPACE}`, { auth: { credential }, transports: ['websocket'], reconnection: false, forceNew: true, timeout: 20_000 });
    raw.push(socket);
    const outcome = new Promise<Outcome>((resolve) => {
      socket.once('connect', () => resolve({ connected: true }));
      socket.once('connect_error', (err: Error & { data?: unknown }) => resolve({ connected: false, data: err.data as Extract<Outcome, { connected: false }>['data'] }));
    });
    return { socket, outcome };
  }

  test('an agent past the bound waits on its connection and gets in when the hello ahead of it is answered', async () => {
    const [a, b] = [await enrolMachine(t, p), await enrolMachine(t, p)];
    const first = await connectAgent(t.url, a.credential);
    expect(line()).toEqual({ inProgress: 1, queued: 0 });
    const second = dial(b.credential);
    await waitFor('the second agent in line', () => line().queued === 1 || undefined);
    expect(second.socket.connected).toBe(false);
    expect((await emitWithAck<AgentHelloAck>(first, AgentEvents.hello, helloBody())).ok).toBe(true);
    expect(await second.outcome).toEqual({ connected: true });
    expect(line()).toEqual({ inProgress: 1, queued: 0 });
    expect((await emitWithAck<AgentHelloAck>(second.socket, AgentEvents.hello, helloBody())).ok).toBe(true);
    expect(line()).toEqual({ inProgress: 0, queued: 0 });
  });

  test('an agent that waited its longest is told unavailable, with when to come back, and then gets in', async () => {
    const [a, b] = [await enrolMachine(t, p), await enrolMachine(t, p)];
    const first = await connectAgent(t.url, a.credential);
    const second = dial(b.credential);
    const outcome = await second.outcome;
    expect(outcome.connected).toBe(false);
    const data = (outcome as Extract<Outcome, { connected: false }>).data;
    expect(data.code).toBe(ErrorCode.unavailable);
    expect(data.retryAfterMs).toBeGreaterThanOrEqual(1_000);
    expect(data.retryAfterMs).toBeLessThanOrEqual(30_000);
    expect(line()).toEqual({ inProgress: 1, queued: 0 });
    expect((await emitWithAck<AgentHelloAck>(first, AgentEvents.hello, helloBody())).ok).toBe(true);
    const again = await connectAgent(t.url, b.credential);
    expect((await emitWithAck<AgentHelloAck>(again, AgentEvents.hello, helloBody())).ok).toBe(true);
  });

  test('an agent that hangs up while in line gives its place back; the one behind it goes first', async () => {
    const [a, b, c] = [await enrolMachine(t, p), await enrolMachine(t, p), await enrolMachine(t, p)];
    const first = await connectAgent(t.url, a.credential);
    const second = dial(b.credential);
    const third = dial(c.credential);
    await waitFor('two agents in line', () => line().queued === 2 || undefined);
    second.socket.close();
    await waitFor('the one that hung up out of line', () => line().queued === 1 || undefined);
    expect((await emitWithAck<AgentHelloAck>(first, AgentEvents.hello, helloBody())).ok).toBe(true);
    expect(await third.outcome).toEqual({ connected: true });
    expect(line()).toEqual({ inProgress: 1, queued: 0 });
  });

  test('a refused credential and a dropped connection free their slot', async () => {
    const a = await enrolMachine(t, p);
    await expect(connectAgent(t.url, 'kpm_not-a-credential')).rejects.toMatchObject({ data: { code: ErrorCode.machineRevoked } });
    expect(line()).toEqual({ inProgress: 0, queued: 0 });
    const first = await connectAgent(t.url, a.credential);
    expect(line().inProgress).toBe(1);
    first.close(); // gone before its hello
    await waitFor('the slot freed by the close', () => line().inProgress === 0 || undefined);
  });
});
