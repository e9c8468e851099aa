/**
 * Which Docker engine the agent talks to, and loading dockerode only when
 * there is one: an agent on a host without Docker never loads it.
 */
import * as fs from 'node:fs';
import type Dockerode from 'dockerode';

export type DockerTarget = { kind: 'unix'; socketPath: string } | { kind: 'tcp'; host: string; port: number; protocol: 'http' | 'https' };

/**
 * The configured socket path wins; else `DOCKER_HOST` (`unix:///path` or
 * `tcp://host:port`, as the docker CLI reads it); else the default socket.
 */
export function dockerTarget(configured: string | undefined, env: NodeJS.ProcessEnv, fallback: string): DockerTarget {
  if (configured) return { kind: 'unix', socketPath: configured };
  const host = env.DOCKER_HOST?.trim();
  if (host) {
    if (host.startsWith('unix://')) return { kind: 'unix', socketPath: host.slice('unix://'.length) };
    const m = /^(tcp|http|https):\/\/\[?([^\]/]+?)\]?(?::(\d+))?\/?$/.exec(host);
    if (m) {
      const tls = m[1] === 'https' || env.DOCKER_TLS_VERIFY === '1';
      return { kind: 'tcp', host: m[2]!, port: m[3] ? Number(m[3]) : tls ? 2376 : 2375, protocol: tls ? 'https' : 'http' };
    }
    throw new Error(`DOCKER_HOST must be unix:///path or tcp://host:port, got "${host}"`);
  }
  return { kind: 'unix', socketPath: fallback };
}

export function describeTarget(t: DockerTarget): string {
  return t.kind === 'unix' ? `unix://${t.socketPath}` : `${t.protocol}://${t.host}:${t.port}`;
}

/** Why this target cannot be tried at all right now (no socket file), or null. Costs a stat, loads nothing. */
export function targetMissing(t: DockerTarget): string | null {
  if (t.kind !== 'unix') return null;
  try {
    const st = fs.statSync(t.socketPath);
    return st.isSocket() ? null : `${t.socketPath} is not a socket`;
  } catch {
    return `no Docker socket at ${t.socketPath}`;
  }
}

type DockerodeCtor = new (options?: Dockerode.DockerOptions) => Dockerode;
let ctor: DockerodeCtor | null = null;

/** A client for the target; dockerode is required the first time one is needed. */
export function dockerClient(t: DockerTarget): Dockerode {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  ctor ??= require('dockerode') as DockerodeCtor;
  return t.kind === 'unix' ? new ctor({ socketPath: t.socketPath }) : new ctor({ host: t.host, port: t.port, protocol: t.protocol });
}

/** Has this process loaded dockerode? (Tests of an idle agent without Docker.) */
export function dockerodeLoaded(): boolean {
  return ctor !== null;
}

/** Docker's error text, as short as it is useful: the engine's message when it sent one. */
export function dockerError(err: unknown): string {
  const e = err as { json?: { message?: unknown }; reason?: unknown; statusCode?: unknown; message?: unknown };
  const fromEngine = typeof e?.json?.message === 'string' ? e.json.message : null;
  const text = fromEngine ?? (typeof e?.message === 'string' ? e.message : String(err));
  return text.replace(/^\(HTTP code \d+\)\s*[^-]*-\s*/, '').slice(0, 2000);
}

export function statusCodeOf(err: unknown): number | null {
  const c = (err as { statusCode?: unknown })?.statusCode;
  return typeof c === 'number' ? c : null;
}
