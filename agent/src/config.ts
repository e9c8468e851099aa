/** Run-time tunables, from the environment (see README "Environment"). */
import { METRICS_LIMITS, PRESENCE } from '@kapitan/shared';
import { DEFAULT_MAX_BACKOFF_MS } from './backoff';
import { DEFAULT_KILL_GRACE_MS, DEFAULT_STREAM_LINGER_MS } from './executor';
import { DEFAULT_PARTIAL_HOLD_MS } from './line-chunker';
import { parseLogLevel, type LogLevel } from './logger';
import { DEFAULT_OUTBOX_BYTES } from './outbox';
import { DEFAULT_CACHE_BYTES } from './file-cache';

export interface AgentConfig {
  logLevel: LogLevel;
  maxBackoffMs: number;
  heartbeatMs: number;
  outboxBytes: number;
  killGraceMs: number;
  ackTimeoutMs: number;
  streamLingerMs: number;
  partialLineHoldMs: number;
  /** Docker socket path; empty: `DOCKER_HOST`, else /var/run/docker.sock (containers/docker-target.ts). */
  dockerSocket: string;
  /** Bound of the download cache in the state directory (files and images the server sends). */
  cacheBytes: number;
  /** Directories deploys may write into; empty: only `<state dir>/deploys`. */
  deployDirs: string[];
  /** Metrics sampling interval while nobody watches the machine (the server leases a faster one to watchers); 0: no metrics. */
  metricsIntervalMs: number;
}

export const DEFAULT_CONFIG: AgentConfig = {
  logLevel: 'info',
  maxBackoffMs: DEFAULT_MAX_BACKOFF_MS,
  heartbeatMs: PRESENCE.heartbeatIntervalMs,
  outboxBytes: DEFAULT_OUTBOX_BYTES,
  killGraceMs: DEFAULT_KILL_GRACE_MS,
  ackTimeoutMs: 60_000,
  streamLingerMs: DEFAULT_STREAM_LINGER_MS,
  partialLineHoldMs: DEFAULT_PARTIAL_HOLD_MS,
  dockerSocket: '',
  cacheBytes: DEFAULT_CACHE_BYTES,
  deployDirs: [],
  metricsIntervalMs: 10_000,
};

export const ENV = {
  stateDir: 'KAPITAN_AGENT_STATE_DIR',
  logLevel: 'KAPITAN_AGENT_LOG_LEVEL',
  maxBackoffMs: 'KAPITAN_AGENT_MAX_BACKOFF_MS',
  heartbeatMs: 'KAPITAN_AGENT_HEARTBEAT_MS',
  outboxBytes: 'KAPITAN_AGENT_OUTBOX_BYTES',
  killGraceMs: 'KAPITAN_AGENT_KILL_GRACE_MS',
  ackTimeoutMs: 'KAPITAN_AGENT_ACK_TIMEOUT_MS',
  streamLingerMs: 'KAPITAN_AGENT_STREAM_LINGER_MS',
  partialLineHoldMs: 'KAPITAN_AGENT_PARTIAL_LINE_HOLD_MS',
  dockerSocket: 'KAPITAN_AGENT_DOCKER_SOCKET',
  cacheBytes: 'KAPITAN_AGENT_CACHE_BYTES',
  deployDirs: 'KAPITAN_AGENT_DEPLOY_DIRS',
  metricsIntervalMs: 'KAPITAN_AGENT_METRICS_INTERVAL_MS',
} as const;

function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min}, got "${raw}"`);
  return n;
}

/** A `:`-separated list of absolute directories. */
function dirs(env: NodeJS.ProcessEnv, name: string): string[] {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return [];
  const list = raw.split(':').filter(Boolean);
  for (const d of list) if (!d.startsWith('/')) throw new Error(`${name} must list absolute directories separated by ":", got "${d}"`);
  return list;
}

/** Read the tunables; throws a clear error on an invalid value. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): AgentConfig {
  return {
    logLevel: parseLogLevel(env[ENV.logLevel], DEFAULT_CONFIG.logLevel),
    maxBackoffMs: int(env, ENV.maxBackoffMs, DEFAULT_CONFIG.maxBackoffMs, 1),
    heartbeatMs: int(env, ENV.heartbeatMs, DEFAULT_CONFIG.heartbeatMs, 10),
    outboxBytes: int(env, ENV.outboxBytes, DEFAULT_CONFIG.outboxBytes, 1024),
    killGraceMs: int(env, ENV.killGraceMs, DEFAULT_CONFIG.killGraceMs, 0),
    ackTimeoutMs: int(env, ENV.ackTimeoutMs, DEFAULT_CONFIG.ackTimeoutMs, 10),
    streamLingerMs: int(env, ENV.streamLingerMs, DEFAULT_CONFIG.streamLingerMs, 0),
    partialLineHoldMs: int(env, ENV.partialLineHoldMs, DEFAULT_CONFIG.partialLineHoldMs, 0),
    dockerSocket: env[ENV.dockerSocket]?.trim() || DEFAULT_CONFIG.dockerSocket,
    cacheBytes: int(env, ENV.cacheBytes, DEFAULT_CONFIG.cacheBytes, 1024 * 1024),
    deployDirs: dirs(env, ENV.deployDirs),
    metricsIntervalMs: metricsInterval(env),
  };
}

/** 0 turns metrics off; otherwise at least the shortest interval the protocol allows. */
function metricsInterval(env: NodeJS.ProcessEnv): number {
  const n = int(env, ENV.metricsIntervalMs, DEFAULT_CONFIG.metricsIntervalMs, 0);
  if (n !== 0 && (n < METRICS_LIMITS.intervalMsMin || n > METRICS_LIMITS.intervalMsMax)) {
    throw new Error(`${ENV.metricsIntervalMs} must be 0 (off) or between ${METRICS_LIMITS.intervalMsMin} and ${METRICS_LIMITS.intervalMsMax}, got "${env[ENV.metricsIntervalMs]}"`);
  }
  return n;
}
