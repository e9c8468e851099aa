/**
 * Real socket.io clients for server-tier specs: an agent socket on `/agent`
 * and a dashboard socket on `/live` against a `createTestApp` app, plus a
 * project with an enrolled machine to point them at.
 *
 * ```ts
 * const p = await setupProject(t);              // owner, project, enrolment token
 * const m = await enrolMachine(t, p);           // { machineId, credential }
 * const agent = await connectAgent(t.url, m.credential);
 * const ack = await emitWithAck(agent, AgentEvents.hello, helloBody());
 * ```
 */
import { AGENT_NAMESPACE, LIVE_NAMESPACE, type AgentHello, type MachineFacts } from '@kapitan/shared';
import { io, type Socket } from 'socket.io-client';
import { bearer, signupUser, type TestApp } from './test-app';

export const FACTS: MachineFacts = {
  hostname: 'spec-host',
  os: 'Debian',
  platform: 'linux',
  kernel: '6.1',
  arch: 'x64',
  cpus: 2,
  memoryBytes: 1024,
  agentVersion: 'spec',
  dockerAvailable: false,
};

export const helloBody = (activeExecutionIds: string[] = []): AgentHello => ({ facts: FACTS, activeExecutionIds });

const open: Socket[] = [];

/** Closes every socket the helpers opened (call in afterEach/afterAll). */
export function closeSockets(): void {
  for (const s of open.splice(0)) s.close();
}

function connect(url: string, auth: Record<string, string>): Promise<Socket> {
  const socket = io(url, { auth, transports: ['websocket'], reconnection: false, forceNew: true });
  open.push(socket);
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err: Error & { data?: unknown }) => {
      socket.close();
      reject(Object.assign(err, { data: err.data }));
    });
  });
}

export const connectAgent = (url: string, credential: string): Promise<Socket> => connect(`${url}${AGENT_NAMESPACE}`, { credential });
export const connectLive = (url: string, token: string): Promise<Socket> => connect(`${url}${LIVE_NAMESPACE}`, { token });

/** Emit and wait for the ack, failing after `timeoutMs` instead of hanging the spec. */
export async function emitWithAck<T = { ok: boolean; error?: { code: string } } & Record<string, unknown>>(
  socket: Socket,
  event: string,
  body: unknown,
  timeoutMs = 5_000,
): Promise<T> {
  return (await socket.timeout(timeoutMs).emitWithAck(event, body)) as T;
}

/** The next `event` on `socket` whose payload `match`es, or a rejection after `timeoutMs`. */
export function nextEvent<T = unknown>(socket: Socket, event: string, match: (p: T) => boolean = () => true, timeoutMs = 5_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, on);
      reject(new Error(`no ${event} within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (p: T): void => {
      if (!match(p)) return;
      clearTimeout(timer);
      socket.off(event, on);
      resolve(p);
    };
    socket.on(event, on);
  });
}

/** Every `event` the socket receives from now on, for "nothing arrived" assertions. */
export function record<T = unknown>(socket: Socket, event: string): T[] {
  const seen: T[] = [];
  socket.on(event, (p: T) => seen.push(p));
  return seen;
}

export interface SpecProject {
  projectId: string;
  owner: { token: string; userId: string; email: string };
  enrolmentToken: string;
}

export async function setupProject(t: TestApp, name = 'p'): Promise<SpecProject> {
  const u = await signupUser(t.http);
  const projectId = (await t.http.post('/api/projects').set(bearer(u.token)).send({ name }).expect(201)).body.id as string;
  const token = (await t.http.post(`/api/projects/${projectId}/enrolment-tokens`).set(bearer(u.token)).send({}).expect(201)).body.token as string;
  return { projectId, owner: { token: u.token, userId: u.user.id, email: u.email }, enrolmentToken: token };
}

export async function enrolMachine(t: TestApp, p: SpecProject): Promise<{ machineId: string; credential: string }> {
  const r = await t.http.post('/api/agent/enrol').send({ token: p.enrolmentToken, facts: FACTS }).expect(201);
  return { machineId: r.body.machineId, credential: r.body.credential };
}

/** A run of `script` on one machine; its execution id. */
export async function runOn(t: TestApp, p: SpecProject, machineId: string, script = 'echo hi'): Promise<string> {
  const r = await t.http.post(`/api/projects/${p.projectId}/executions`).set(bearer(p.owner.token)).send({ script, targets: { machineIds: [machineId] } }).expect(201);
  return r.body.executions[0].id as string;
}
