import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { registerCleanup } from './cleanup';
import { makeTempDir, removeDir } from './database';
import { freePort } from './ports';
import { childEnv, spawnProcess, type ManagedProcess } from './process';
import { requirement } from './requirements';
import { waitFor } from './wait';

export const HAPROXY = process.env.KAPITAN_E2E_HAPROXY ?? '/usr/sbin/haproxy';

/** Null when HAProxy is there; else why not (a failure under CI=true, like every missing dependency). */
export function requireHaproxy(): string | null {
  return requirement('haproxy', fs.existsSync(HAPROXY) ? null : `${HAPROXY} not found (apt-get install haproxy, or set KAPITAN_E2E_HAPROXY)`);
}

export interface BalancerBackend {
  /** The server's name in HAProxy (stats, state changes). */
  name: string;
  port: number;
}

/** HAProxy's view of one server: UP, DOWN, DRAIN, MAINT, or a transition such as `UP 1/2`. */
export type BackendStatus = string;

export interface TestBalancer {
  /** `http://127.0.0.1:<port>`: what agents, dashboards and REST callers are given. */
  readonly url: string;
  readonly port: number;
  readonly config: string;
  readonly managed: ManagedProcess;
  /** Each server's status as HAProxy sees it now. */
  status(): Promise<Record<string, BackendStatus>>;
  /** Waits until HAProxy reports `name` as `status` (exactly, e.g. 'UP' or 'DOWN'). */
  waitFor(name: string, status: BackendStatus, timeoutMs?: number): Promise<void>;
  /** `set server kapitan/<name> state ready|drain|maint`: steer new connections in a test. */
  setState(name: string, state: 'ready' | 'drain' | 'maint'): Promise<void>;
  /** One runtime API command; its answer. */
  command(line: string): Promise<string>;
  dispose(): Promise<void>;
}

/**
 * The HAProxy configuration a Kapitan cluster needs (docker/haproxy.cfg is
 * the same, for the compose file): HTTP mode (WebSockets pass as upgrades
 * and then live in `timeout tunnel`), a health check on /api/health/live
 * (never the database: see the health controller) every `checkIntervalMs`
 * that takes a node out at its first 503 or refused connection (a stopping
 * node answers 503, a dead one refuses), and a
 * connection that fails is retried on another node (`option redispatch`):
 * an agent or dashboard redialling at the moment a node goes away is not
 * sent back to it. No stickiness: nothing a node holds is authoritative,
 * and socket.io runs WebSocket-only for agents.
 */
/** Suffix of each node's unchecked backup entry (`option allbackups`): not a backend of its own. */
const LAST_RESORT = '-last-resort';

export function haproxyConfig(options: { port: number; backends: readonly BalancerBackend[]; adminSocket?: string; checkIntervalMs?: number; fall?: number }): string {
  const inter = options.checkIntervalMs ?? 500;
  const fall = options.fall ?? 2;
  return [
    'global',
    "  maxconn 9000", // two descriptors per proxied connection: within a 20,000 ulimit
    ...(options.adminSocket ? [`  stats socket ${options.adminSocket} mode 600 level admin`] : []),
    '',
    'defaults',
    '  mode http',
    '  option forwardfor',
    '  timeout connect 2s',
    '  timeout client 1h',
    '  timeout server 1h',
    '  timeout tunnel 1h',
    '  timeout http-request 10s',
    // A loaded node may answer its health check slowly; only a refusal, a 503 or silence this long takes it out.
    '  timeout check 5s',
    '  retries 3',
    '  option redispatch 1',
    '  retry-on conn-failure',
    '',
    'frontend kapitan_in',
    `  bind 127.0.0.1:${options.port}`,
    '  default_backend kapitan',
    '',
    'backend kapitan',
    '  balance roundrobin',
    '  option httpchk GET /api/health/live',
    '  http-check expect status 200',
    `  default-server check inter ${inter}ms fastinter ${inter}ms downinter ${inter}ms fall ${fall} rise 1`,
    ...options.backends.map((b) => `  server ${b.name} 127.0.0.1:${b.port}`),
    // The last node standing is never taken out: when every node fails its check (a survivor too busy
    // to answer within `timeout check` while thousands of agents move onto it), the same nodes serve
    // unchecked, and a dead one's refusal is redispatched. Without this a reconnect storm made HAProxy
    // refuse everyone, which made the storm worse.
    '  option allbackups',
    ...options.backends.map((b) => `  server ${b.name}${LAST_RESORT} 127.0.0.1:${b.port} backup no-check`),
    '',
  ].join('\n');
}

/**
 * A REAL HAProxy in front of `backends`, on a free port, with its runtime
 * API on a Unix socket; resolves once every backend is UP (unless
 * `waitUp: false`).
 */
export async function startBalancer(backends: readonly BalancerBackend[], options: { waitUp?: boolean; checkIntervalMs?: number; fall?: number } = {}): Promise<TestBalancer> {
  const dir = await makeTempDir('kapitan-e2e-haproxy-');
  const port = await freePort();
  const adminSocket = path.join(dir, 'admin.sock');
  const config = haproxyConfig({ port, backends, adminSocket, checkIntervalMs: options.checkIntervalMs, fall: options.fall });
  const file = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(file, config);
  const check = spawnProcess('haproxy-check', HAPROXY, ['-c', '-f', file], { env: childEnv({}) });
  const checked = await check.exited;
  if (checked.code !== 0) throw new Error(`haproxy -c refused the generated configuration:\n${check.tail(20)}\n${config}`);
  // -db: foreground, no daemon; its output is kept like any other process's.
  const managed = spawnProcess('haproxy', HAPROXY, ['-db', '-f', file], { env: childEnv({}) });

  const command = (line: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const c = net.createConnection(adminSocket);
      let out = '';
      c.setEncoding('utf8');
      c.on('data', (d) => (out += d));
      c.on('error', reject);
      c.on('end', () => resolve(out));
      c.on('connect', () => c.write(`${line}\n`));
    });
  const status = async (): Promise<Record<string, BackendStatus>> => {
    const csv = await command('show stat');
    const lines = csv.replace(/^# /, '').trim().split('\n');
    const header = lines[0].split(',');
    const px = header.indexOf('pxname');
    const sv = header.indexOf('svname');
    const st = header.indexOf('status');
    const result: Record<string, BackendStatus> = {};
    for (const l of lines.slice(1)) {
      const cols = l.split(',');
      if (cols[px] === 'kapitan' && cols[sv] !== 'BACKEND' && !cols[sv].endsWith(LAST_RESORT)) result[cols[sv]] = cols[st];
    }
    return result;
  };
  const waitForStatus = async (name: string, wanted: BackendStatus, timeoutMs = 30_000): Promise<void> => {
    await waitFor(async () => (await status())[name] === wanted, { timeoutMs, intervalMs: 100, message: `HAProxy to report ${name} ${wanted}` });
  };

  let disposed = false;
  const dispose = async (): Promise<void> => {
    if (disposed) return;
    disposed = true;
    unregister();
    await managed.dispose();
    await removeDir(dir);
  };
  const unregister = registerCleanup('haproxy', dispose);
  try {
    await waitFor(() => fs.existsSync(adminSocket) || !managed.running, { timeoutMs: 15_000, message: 'HAProxy runtime API socket' });
    if (!managed.running) throw new Error(`haproxy exited at start:\n${managed.tail(20)}`);
    if (options.waitUp !== false) for (const b of backends) await waitForStatus(b.name, 'UP');
  } catch (error) {
    await dispose();
    throw error;
  }
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    config,
    managed,
    status,
    waitFor: waitForStatus,
    setState: async (name, state) => {
      const answer = (await command(`set server kapitan/${name} state ${state}`)).trim();
      if (answer) throw new Error(`HAProxy refused "set server kapitan/${name} state ${state}": ${answer}`);
    },
    command,
    dispose,
  };
}
