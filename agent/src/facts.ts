/** What the agent tells the server about its host (MachineFactsSchema). */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { MachineFacts } from '@kapitan/shared';

export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';

let cachedVersion: string | undefined;

/** Set by the bundler (scripts/bundle.mjs): a bundled agent has no package.json beside it. */
declare const KAPITAN_AGENT_BUILD_VERSION: string | undefined;

/** The agent's version: baked into a bundle, else from its package.json (next to src/ and dist/). */
export function agentVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  if (typeof KAPITAN_AGENT_BUILD_VERSION === 'string') return (cachedVersion = KAPITAN_AGENT_BUILD_VERSION);
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version?: unknown };
    cachedVersion = typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    cachedVersion = '0.0.0';
  }
  return cachedVersion;
}

/** PRETTY_NAME of /etc/os-release, else "<type> <release>". */
export function osName(osReleaseFile = '/etc/os-release'): string {
  try {
    const text = fs.readFileSync(osReleaseFile, 'utf8');
    const m = /^PRETTY_NAME=(.*)$/m.exec(text);
    if (m?.[1]) {
      let v = m[1].trim();
      if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) v = v.slice(1, -1);
      v = v.replace(/\\(["'$`\\])/g, '$1');
      if (v) return v;
    }
  } catch {
    // no os-release (containers, other systems)
  }
  return `${os.type()} ${os.release()}`;
}

/** Does a Docker engine answer a ping on this socket within `timeoutMs`? Never throws. */
export async function dockerAvailable(socketPath = DEFAULT_DOCKER_SOCKET, timeoutMs = 1000): Promise<boolean> {
  try {
    fs.statSync(socketPath);
  } catch {
    return false; // no socket: skip loading dockerode at all
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    // Loaded lazily: dockerode pulls in a lot that a host without Docker never needs.
    const { default: Docker } = await import('dockerode');
    const docker = new Docker({ socketPath, timeout: timeoutMs });
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    return await Promise.race([docker.ping().then(() => true), timeout]);
  } catch {
    return false;
  } finally {
    if (timer) clearTimeout(timer);
  }
}

const cut = (s: string, max: number): string => (s.length > max ? s.slice(0, max) : s);

export interface CollectFactsOptions {
  dockerSocket?: string;
  dockerTimeoutMs?: number;
}

export async function collectFacts(options: CollectFactsOptions = {}): Promise<MachineFacts> {
  const cpus = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return {
    hostname: cut(os.hostname() || 'unknown', 255),
    os: cut(osName(), 255),
    platform: cut(process.platform, 64),
    kernel: cut(os.release(), 255),
    arch: cut(os.arch(), 64),
    cpus: Math.max(0, Math.min(100_000, cpus)),
    memoryBytes: os.totalmem(),
    agentVersion: cut(agentVersion(), 64),
    dockerAvailable: await dockerAvailable(options.dockerSocket, options.dockerTimeoutMs),
  };
}
