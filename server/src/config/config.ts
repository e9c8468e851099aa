import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';

const DatabaseUrlSchema = z
  .string()
  .url()
  .refine((u) => u.startsWith('mysql://'), 'only mysql://user:password@host:port/database is supported (unset = embedded SQLite)');

const SECRETS_KEY_FORMAT = 'must be 32 bytes as 64 hex digits or as base64 (e.g. the output of `openssl rand -base64 32`)';

/** 32 bytes from 64 hex digits or from (url-safe) base64, else null. */
export function decodeSecretsKey(text: string): Buffer | null {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(t)) {
    const key = Buffer.from(t, 'base64');
    return key.length === 32 ? key : null;
  }
  return null;
}

/** A byte count: digits, optionally with K, M, G or T (powers of 1024), e.g. `512M`. */
const ByteSizeSchema = z
  .union([z.number(), z.string()])
  .transform((v, ctx) => {
    const m = /^\s*(\d+)\s*([KMGT]?)i?B?\s*$/i.exec(String(v));
    const n = m ? Number(m[1]) * 1024 ** ' KMGT'.indexOf((m[2] || ' ').toUpperCase()) : NaN;
    if (!Number.isSafeInteger(n) || n < 1) {
      ctx.addIssue({ code: 'custom', message: 'must be a positive byte count, e.g. 1048576, 512M or 20G' });
      return z.NEVER;
    }
    return n;
  });

/** The environment, as the one place the process learns its settings. */
export const EnvSchema = z
  .object({
    PORT: z.coerce.number().int().min(0).max(65535).default(8080),
    HOST: z.string().min(1).default('0.0.0.0'),
    KAPITAN_DATA_DIR: z.string().min(1).default('./data'),
    DATABASE_URL: DatabaseUrlSchema.optional(),
    REDIS_URL: z
      .string()
      .url()
      .refine((u) => /^rediss?:\/\//.test(u), 'must be redis:// or rediss://')
      .optional(),
    JWT_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
    JWT_TTL_SECONDS: z.coerce.number().int().min(60).max(30 * 24 * 3600).default(12 * 3600),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** `auto`: human-readable lines when stdout is a terminal, JSON lines otherwise (for log shippers). */
    LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
    /** Where the built dashboard is; unset = web/dist/web/browser of this checkout. */
    KAPITAN_WEB_DIR: z.string().optional(),
    /** The agent as clients receive it (bundle/kapitan-agent.cjs, sea/kapitan-agent), for bundles and one-line installs; unset = agent/dist of this checkout. */
    KAPITAN_AGENT_DIST_DIR: z.string().min(1).optional(),
    LOGIN_MAX_FAILURES: z.coerce.number().int().min(1).max(1000).default(5),
    LOGIN_WINDOW_SECONDS: z.coerce.number().int().min(1).max(86400).default(60),
    /** Refused sign-ups (address taken, closed, bad invitation) per client address in LOGIN_WINDOW_SECONDS, before 429. */
    SIGNUP_MAX_FAILURES: z.coerce.number().int().min(1).max(100_000).default(5),
    /** Failed log-ins for one account from addresses it never logged in from, before 429 (with backoff). */
    LOGIN_ACCOUNT_MAX_FAILURES: z.coerce.number().int().min(1).max(100_000).default(50),
    /** Running work of a machine offline this long ends `lost`. */
    KAPITAN_LOST_AFTER_SECONDS: z.coerce.number().int().min(1).default(600),
    /** Agent events a socket may send per second before it is throttled (burst = 10x). */
    KAPITAN_AGENT_EVENTS_PER_SECOND: z.coerce.number().int().min(1).default(500),
    /** Agents this node takes through the handshake (credential, hello) at once; the rest wait their turn on their connection. */
    KAPITAN_AGENT_ADMISSIONS: z.coerce.number().int().min(1).max(100_000).default(200),
    /** Longest wait for that turn before an agent is told when to come back (keep it below the agent's 20 s connect timeout). */
    KAPITAN_AGENT_ADMISSION_WAIT_SECONDS: z.coerce.number().min(0.1).max(600).default(8),
    /** Dashboard events a `/live` socket may send per second (burst = 10x); a user's sockets together get twice that. */
    KAPITAN_LIVE_EVENTS_PER_SECOND: z.coerce.number().int().min(1).default(20),
    /** History reads (`subscribe:execution`, `execution:history`) a `/live` socket may have in flight at once. */
    KAPITAN_LIVE_HISTORY_IN_FLIGHT: z.coerce.number().int().min(1).default(4),
    KAPITAN_NODE_ID: z.string().min(1).max(64).optional(),
    /** The key that encrypts project secrets at rest; unset = generated once into the data directory. */
    KAPITAN_SECRETS_KEY: z
      .string()
      .trim()
      .refine((k) => decodeSecretsKey(k) !== null, SECRETS_KEY_FORMAT)
      .optional(),
    /** `1` only under `npm run bench`: the process writes its memory and event-loop stats (common/bench-stats.ts). */
    KAPITAN_BENCH: z.enum(['0', '1']).default('0'),
    KAPITAN_BENCH_INTERVAL_MS: z.coerce.number().int().min(100).max(60_000).default(1000),
    /** Who may sign up: `open` or `invite`; unset = open until the first account exists, then invite (admins may change it). */
    KAPITAN_SIGNUP: z.enum(['open', 'invite']).optional(),
    /** A client must send its whole request header within this long (slowloris). */
    KAPITAN_HEADERS_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(300).default(10),
    /** A node told to stop (SIGTERM) drains and exits within this long, or exits anyway (code 1). */
    KAPITAN_SHUTDOWN_TIMEOUT_SECONDS: z.coerce.number().int().min(1).max(600).default(10),
    /**
     * Which peers may tell the client's address in X-Forwarded-For (Express
     * `trust proxy`): `loopback` (default: a reverse proxy on this host), a
     * comma-separated list of addresses/CIDRs or loopback|linklocal|uniquelocal,
     * a hop count, `true` or `false`. Behind a load balancer on another host,
     * name it here, or every client shares the balancer's address and the
     * per-address log-in limit locks everyone out together.
     */
    /** Where uploaded files are kept (content-addressed); unset = <KAPITAN_DATA_DIR>/files. */
    KAPITAN_FILES_DIR: z.string().min(1).optional(),
    /** Largest file of each kind, in bytes or with a K/M/G/T suffix (binary: 1G = 1024³ bytes). */
    KAPITAN_FILES_MAX_SCRIPT_BYTES: ByteSizeSchema.default(1024 * 1024),
    KAPITAN_FILES_MAX_FILE_BYTES: ByteSizeSchema.default(4 * 1024 ** 3),
    KAPITAN_FILES_MAX_IMAGE_BYTES: ByteSizeSchema.default(32 * 1024 ** 3),
    /**
     * Shifts this node's clock for schedules only, by up to an hour either way:
     * how the tests run several real nodes that disagree about the time.
     * Leave unset in production.
     */
    KAPITAN_SCHEDULE_CLOCK_SKEW_MS: z.coerce.number().int().min(-3_600_000).max(3_600_000).default(0),
    /** How often an agent samples while someone watches its machine (the server asks for it with `metrics:watch`). */
    KAPITAN_METRICS_WATCH_INTERVAL_MS: z.coerce.number().int().min(200).max(60_000).default(1000),
    /** How long a watch lasts on the agent without a renewal: bounds what a node that died with its watchers leaves sampling fast. */
    KAPITAN_METRICS_WATCH_LEASE_MS: z.coerce.number().int().min(1000).max(600_000).default(15_000),
    /** At most one stored raw sample per machine per this (a watched agent's 1 s samples go live, one in ten is kept). */
    KAPITAN_METRICS_RAW_INTERVAL_MS: z.coerce.number().int().min(100).max(3_600_000).default(10_000),
    /** Retention of each resolution, host series (see docs/design.md for the size of a year). */
    KAPITAN_METRICS_RAW_RETENTION_HOURS: z.coerce.number().min(1).max(24 * 366).default(48),
    KAPITAN_METRICS_MINUTE_RETENTION_DAYS: z.coerce.number().min(1).max(3660).default(7),
    KAPITAN_METRICS_HOUR_RETENTION_DAYS: z.coerce.number().min(1).max(3660).default(365),
    /** Retention of each resolution, container series: shorter by default, a host has many containers. */
    KAPITAN_METRICS_CONTAINER_RAW_RETENTION_HOURS: z.coerce.number().min(1).max(24 * 366).default(6),
    KAPITAN_METRICS_CONTAINER_MINUTE_RETENTION_DAYS: z.coerce.number().min(1).max(3660).default(2),
    KAPITAN_METRICS_CONTAINER_HOUR_RETENTION_DAYS: z.coerce.number().min(1).max(3660).default(30),
    /** HTTPS beside plain HTTP: a port, or `off`. 0 picks a free port (tests). */
    HTTPS_PORT: z
      .string()
      .trim()
      .refine((v) => v === 'off' || (/^\d{1,5}$/.test(v) && Number(v) <= 65535), 'must be a port number (0–65535) or off')
      .default('8443'),
    /** A certificate (PEM, followed by its chain) and its key; unset = an instance CA made on first start signs one. */
    KAPITAN_TLS_CERT: z.string().min(1).optional(),
    KAPITAN_TLS_KEY: z.string().min(1).optional(),
    /** Where the generated CA and serving certificate are kept; unset = <KAPITAN_DATA_DIR>/tls. Nodes behind one balancer share it. */
    KAPITAN_TLS_DIR: z.string().min(1).optional(),
    /** The address written into client bundles (scheme, host, port); unset = https://<hostname>:<HTTPS_PORT>, or http://localhost:<PORT> with HTTPS off. */
    KAPITAN_PUBLIC_URL: z
      .string()
      .trim()
      .refine((v) => {
        try {
          const u = new URL(v);
          return (u.protocol === 'https:' || u.protocol === 'http:') && (u.pathname === '/' || u.pathname === '') && !u.search && !u.hash && !u.username;
        } catch {
          return false;
        }
      }, 'must be an http(s) URL with no path, query or credentials, e.g. https://kapitan.example.com:8443')
      .optional(),
    /** Days an audit event is kept; 0 (the default) keeps every event for good. */
    KAPITAN_AUDIT_RETENTION_DAYS: z.coerce.number().int().min(0).max(36_500).default(0),
    TRUST_PROXY: z
      .string()
      .trim()
      .refine(isTrustProxySetting, 'must be true, false, a hop count, or a comma-separated list of IP addresses, CIDRs, loopback, linklocal or uniquelocal')
      .default('loopback'),
  })
  .superRefine((env, ctx) => {
    if (!!env.KAPITAN_TLS_CERT !== !!env.KAPITAN_TLS_KEY) {
      const missing = env.KAPITAN_TLS_CERT ? 'KAPITAN_TLS_KEY' : 'KAPITAN_TLS_CERT';
      ctx.addIssue({ code: 'custom', path: [missing], message: 'is required with KAPITAN_TLS_CERT / KAPITAN_TLS_KEY: set both or neither' });
    }
    // Several nodes must agree on the signing key; a generated per-node secret would log users out at random.
    if (env.REDIS_URL && !env.JWT_SECRET) {
      ctx.addIssue({ code: 'custom', path: ['JWT_SECRET'], message: 'is required when REDIS_URL is set (every node must share it)' });
    }
    // The same for the secrets key: with a generated key per node, a secret stored through one node cannot be read on another.
    if (env.REDIS_URL && !env.KAPITAN_SECRETS_KEY) {
      ctx.addIssue({
        code: 'custom',
        path: ['KAPITAN_SECRETS_KEY'],
        message: 'is required when REDIS_URL is set (every node must share it, or secrets stored through one node cannot be read on another)',
      });
    }
  });
export type Env = z.infer<typeof EnvSchema>;

function isTrustProxySetting(v: string): boolean {
  if (v === 'true' || v === 'false' || /^\d{1,2}$/.test(v)) return true;
  return v.split(',').every((part) => {
    const p = part.trim();
    if (['loopback', 'linklocal', 'uniquelocal'].includes(p)) return true;
    const [ip, bits, ...rest] = p.split('/');
    const family = isIP(ip);
    if (!family || rest.length) return false;
    return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128));
  });
}

/** The Express `trust proxy` value for a TRUST_PROXY setting. */
function trustProxyValue(v: string): boolean | number | string {
  if (v === 'true') return true;
  if (v === 'false') return false;
  if (/^\d+$/.test(v)) return Number(v);
  return v;
}

export type DatabaseConfig =
  | { type: 'sqlite'; path: string }
  | { type: 'mysql'; url: string };

export interface AppConfig {
  port: number;
  host: string;
  dataDir: string;
  database: DatabaseConfig;
  redisUrl: string | undefined;
  jwt: { secret: string; ttlSeconds: number };
  logLevel: Env['LOG_LEVEL'];
  logFormat: 'json' | 'pretty';
  webDir: string;
  login: { maxFailures: number; windowSeconds: number; accountMaxFailures: number };
  lostAfterSeconds: number;
  agentEventsPerSecond: number;
  agentAdmission: { concurrency: number; maxWaitMs: number };
  live: { eventsPerSecond: number; historyInFlight: number };
  nodeId: string;
  /** Benchmark instrumentation, null unless KAPITAN_BENCH=1. */
  bench: { intervalMs: number } | null;
  http: { headersTimeoutSeconds: number };
  /** KAPITAN_SHUTDOWN_TIMEOUT_SECONDS, in ms: the bound of a graceful stop (drain + shutdown hooks). */
  shutdownTimeoutMs: number;
  /** KAPITAN_SIGNUP: when set it wins over the admin's setting. */
  signupMode: 'open' | 'invite' | undefined;
  signupMaxFailures: number;
  /** Express `trust proxy`: whose X-Forwarded-For names the client (see TRUST_PROXY). */
  trustProxy: boolean | number | string;
  /**
   * The AES-256 key of project secrets, and its id (a fingerprint stored with
   * each encrypted value, so a value sealed under another key is recognised
   * as such instead of failing as garbage, and keys can be rotated later).
   */
  secrets: { key: Buffer; keyId: string };
  /** The file store: its directory and the largest file of each kind, in bytes. */
  files: { dir: string; maxBytes: { script: number; file: number; image: number } };
  /** Milliseconds added to the clock schedules fire by (KAPITAN_SCHEDULE_CLOCK_SKEW_MS; tests of drift). */
  scheduleClockSkewMs: number;
  /** KAPITAN_AUDIT_RETENTION_DAYS: audit events older than this are pruned; null keeps them for good. */
  auditRetentionDays: number | null;
  /** Metrics: the watched sampling rate and its lease, the stored raw spacing, and each resolution's retention in ms. */
  metrics: {
    watchIntervalMs: number;
    watchLeaseMs: number;
    rawIntervalMs: number;
    retentionMs: { host: MetricsRetention; container: MetricsRetention };
  };
  /** HTTPS: null port = off; a configured certificate, or the directory of the generated one. */
  /** The directory holding bundle/kapitan-agent.cjs and sea/kapitan-agent. */
  agentDistDir: string;
  tls: { httpsPort: number | null; certFile?: string; keyFile?: string; dir: string; publicUrl: string; publicHost: string };
}

/** Milliseconds each resolution is kept. */
export interface MetricsRetention {
  raw: number;
  '1m': number;
  '1h': number;
}

export class ConfigError extends Error {}

/** Parse the environment once; a bad variable stops the process with its name. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== ''));
  const parsed = EnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const dataDir = resolve(e.KAPITAN_DATA_DIR);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  return {
    port: e.PORT,
    host: e.HOST,
    dataDir,
    database: e.DATABASE_URL ? { type: 'mysql', url: e.DATABASE_URL } : { type: 'sqlite', path: join(dataDir, 'kapitan.sqlite') },
    redisUrl: e.REDIS_URL,
    jwt: { secret: e.JWT_SECRET ?? persistedSecret(dataDir), ttlSeconds: e.JWT_TTL_SECONDS },
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT === 'auto' ? (process.stdout.isTTY ? 'pretty' : 'json') : e.LOG_FORMAT,
    webDir: e.KAPITAN_WEB_DIR
      ? isAbsolute(e.KAPITAN_WEB_DIR)
        ? e.KAPITAN_WEB_DIR
        : resolve(e.KAPITAN_WEB_DIR)
      : resolve(__dirname, '../../../web/dist/web/browser'),
    login: { maxFailures: e.LOGIN_MAX_FAILURES, windowSeconds: e.LOGIN_WINDOW_SECONDS, accountMaxFailures: e.LOGIN_ACCOUNT_MAX_FAILURES },
    lostAfterSeconds: e.KAPITAN_LOST_AFTER_SECONDS,
    agentEventsPerSecond: e.KAPITAN_AGENT_EVENTS_PER_SECOND,
    agentAdmission: { concurrency: e.KAPITAN_AGENT_ADMISSIONS, maxWaitMs: Math.round(e.KAPITAN_AGENT_ADMISSION_WAIT_SECONDS * 1000) },
    live: { eventsPerSecond: e.KAPITAN_LIVE_EVENTS_PER_SECOND, historyInFlight: e.KAPITAN_LIVE_HISTORY_IN_FLIGHT },
    nodeId: e.KAPITAN_NODE_ID ?? randomBytes(6).toString('hex'),
    bench: e.KAPITAN_BENCH === '1' ? { intervalMs: e.KAPITAN_BENCH_INTERVAL_MS } : null,
    http: { headersTimeoutSeconds: e.KAPITAN_HEADERS_TIMEOUT_SECONDS },
    shutdownTimeoutMs: e.KAPITAN_SHUTDOWN_TIMEOUT_SECONDS * 1000,
    signupMode: e.KAPITAN_SIGNUP,
    signupMaxFailures: e.SIGNUP_MAX_FAILURES,
    trustProxy: trustProxyValue(e.TRUST_PROXY),
    files: {
      dir: e.KAPITAN_FILES_DIR ? resolve(e.KAPITAN_FILES_DIR) : join(dataDir, 'files'),
      maxBytes: { script: e.KAPITAN_FILES_MAX_SCRIPT_BYTES, file: e.KAPITAN_FILES_MAX_FILE_BYTES, image: e.KAPITAN_FILES_MAX_IMAGE_BYTES },
    },
    agentDistDir: e.KAPITAN_AGENT_DIST_DIR ? resolve(e.KAPITAN_AGENT_DIST_DIR) : resolve(__dirname, '../../../agent/dist'),
    tls: tlsConfig(e, dataDir),
    scheduleClockSkewMs: e.KAPITAN_SCHEDULE_CLOCK_SKEW_MS,
    auditRetentionDays: e.KAPITAN_AUDIT_RETENTION_DAYS || null,
    metrics: {
      watchIntervalMs: e.KAPITAN_METRICS_WATCH_INTERVAL_MS,
      watchLeaseMs: e.KAPITAN_METRICS_WATCH_LEASE_MS,
      rawIntervalMs: e.KAPITAN_METRICS_RAW_INTERVAL_MS,
      retentionMs: {
        host: { raw: e.KAPITAN_METRICS_RAW_RETENTION_HOURS * HOUR, '1m': e.KAPITAN_METRICS_MINUTE_RETENTION_DAYS * DAY, '1h': e.KAPITAN_METRICS_HOUR_RETENTION_DAYS * DAY },
        container: {
          raw: e.KAPITAN_METRICS_CONTAINER_RAW_RETENTION_HOURS * HOUR,
          '1m': e.KAPITAN_METRICS_CONTAINER_MINUTE_RETENTION_DAYS * DAY,
          '1h': e.KAPITAN_METRICS_CONTAINER_HOUR_RETENTION_DAYS * DAY,
        },
      },
    },
    secrets: secretsKey(e.KAPITAN_SECRETS_KEY ? decodeSecretsKey(e.KAPITAN_SECRETS_KEY)! : persistedSecretsKey(dataDir)),
  };
}

function tlsConfig(e: Env, dataDir: string): AppConfig['tls'] {
  const httpsPort = e.HTTPS_PORT === 'off' ? null : Number(e.HTTPS_PORT);
  const publicUrl = new URL(e.KAPITAN_PUBLIC_URL ?? (httpsPort !== null ? `https://${hostname()}:${httpsPort || 8443}` : `http://localhost:${e.PORT}`)).origin;
  return {
    httpsPort,
    certFile: e.KAPITAN_TLS_CERT ? resolve(e.KAPITAN_TLS_CERT) : undefined,
    keyFile: e.KAPITAN_TLS_KEY ? resolve(e.KAPITAN_TLS_KEY) : undefined,
    dir: e.KAPITAN_TLS_DIR ? resolve(e.KAPITAN_TLS_DIR) : join(dataDir, 'tls'),
    publicUrl,
    publicHost: new URL(publicUrl).hostname.replace(/^\[|\]$/g, ''),
  };
}

function secretsKey(key: Buffer): AppConfig['secrets'] {
  return { key, keyId: createHash('sha256').update('kapitan secrets key id\0').update(key).digest('hex').slice(0, 16) };
}

/**
 * A secrets key generated on first start and kept (0600) in the data
 * directory. Unlike the JWT secret, a kept key that cannot be read is never
 * replaced: that would make every stored secret unreadable for good.
 */
function persistedSecretsKey(dataDir: string): Buffer {
  const file = join(dataDir, 'secrets-key');
  const read = (): Buffer => {
    const key = decodeSecretsKey(readFileSync(file, 'utf8'));
    if (!key) {
      throw new ConfigError(
        `Invalid configuration:\n  KAPITAN_SECRETS_KEY: unset, and the kept key ${file} is not a key (${SECRETS_KEY_FORMAT}); ` +
          'restore that file or set KAPITAN_SECRETS_KEY to the key the secrets were stored with',
      );
    }
    return key;
  };
  if (existsSync(file)) return read();
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, randomBytes(32).toString('base64') + '\n', { mode: 0o600, flag: 'w' });
  chmodSync(tmp, 0o600);
  try {
    // A hard link fails if the file appeared meanwhile (a second process starting): the first key wins, none is overwritten.
    linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    unlinkSync(tmp);
  }
  return read();
}

/** A JWT secret generated on first start and kept (0600) in the data directory. */
function persistedSecret(dataDir: string): string {
  const file = join(dataDir, 'jwt-secret');
  if (existsSync(file)) {
    const s = readFileSync(file, 'utf8').trim();
    if (s.length >= 32) return s;
  }
  const secret = randomBytes(48).toString('base64url');
  // Written whole and owner-only under another name, then renamed into place: the
  // secret is never readable by others, not even for a moment, and never half-written.
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, secret + '\n', { mode: 0o600, flag: 'w' });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
  return secret;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export const APP_CONFIG = Symbol('APP_CONFIG');
