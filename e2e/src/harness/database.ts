import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import mysql from 'mysql2/promise';
import { registerCleanup } from './cleanup';
import { requirement } from './requirements';

/** The MariaDB/MySQL server the tests may create databases on. */
export const DEFAULT_MYSQL_URL = 'mysql://root@127.0.0.1:3306';
export function mysqlServerUrl(): string {
  return process.env.KAPITAN_TEST_MYSQL_URL || DEFAULT_MYSQL_URL;
}

/** `serverUrl` with its path replaced by the database name. */
export function databaseUrl(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

const redact = (url: string): string => url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');

/** Null when a `SELECT 1` on `serverUrl` works within the timeout, else why not. */
export async function probeMysql(serverUrl = mysqlServerUrl(), timeoutMs = 3_000): Promise<string | null> {
  let connection: mysql.Connection | undefined;
  try {
    connection = await mysql.createConnection({ uri: serverUrl, connectTimeout: timeoutMs });
    await connection.query('SELECT 1');
    return null;
  } catch (error) {
    return `cannot query ${redact(serverUrl)}: ${error instanceof Error ? error.message || error.name : String(error)}`;
  } finally {
    await connection?.end().catch(() => undefined);
  }
}

const syncProbes = new Map<string, string | null>();

/**
 * `probeMysql` made synchronous (a short child process), so a test file can
 * decide at load time whether to describe or skip. Cached per URL.
 */
export function probeMysqlSync(serverUrl = mysqlServerUrl(), timeoutMs = 3_000): string | null {
  const cached = syncProbes.get(serverUrl);
  if (cached !== undefined) return cached;
  const script = `
    const mysql = require(process.argv[1]);
    mysql.createConnection({ uri: process.argv[2], connectTimeout: Number(process.argv[3]) })
      .then((c) => c.query('SELECT 1').then(() => c.end()))
      .then(() => process.exit(0), (e) => { process.stdout.write(String(e && (e.message || e.code) || e)); process.exit(1); });`;
  const result = spawnSync(process.execPath, ['-e', script, require.resolve('mysql2/promise'), serverUrl, String(timeoutMs)], {
    encoding: 'utf8',
    timeout: timeoutMs + 5_000,
  });
  const reason =
    result.status === 0
      ? null
      : `cannot query ${redact(serverUrl)}: ${result.stdout.trim() || result.stderr.trim() || result.error?.message || `probe exited ${result.status ?? result.signal}`}`;
  syncProbes.set(serverUrl, reason);
  return reason;
}

/**
 * The skip rule for MariaDB: null when reachable; otherwise throws under
 * CI=true, or prints and returns the skip reason locally.
 */
export function requireMysql(serverUrl = mysqlServerUrl()): string | null {
  return requirement('MariaDB/MySQL (KAPITAN_TEST_MYSQL_URL)', probeMysqlSync(serverUrl));
}

export interface TestDatabase {
  kind: 'mysql';
  /** The database's name, `kapitan_e2e_<random>`. */
  name: string;
  /** DATABASE_URL for the server. */
  url: string;
  /** Drops the database; idempotent. Also run by the file's afterAll. */
  drop(): Promise<void>;
}

/** A fresh, uniquely named, empty database on the test MariaDB, dropped after the test file. */
export async function createTestDatabase(options: { serverUrl?: string } = {}): Promise<TestDatabase> {
  const serverUrl = options.serverUrl ?? mysqlServerUrl();
  const name = `kapitan_e2e_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  await withConnection(serverUrl, (c) =>
    c.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`),
  );
  let dropped = false;
  const drop = async (): Promise<void> => {
    if (dropped) return;
    await withConnection(serverUrl, (c) => c.query(`DROP DATABASE IF EXISTS \`${name}\``));
    dropped = true;
    unregister();
  };
  const unregister = registerCleanup(`database ${name}`, drop);
  return { kind: 'mysql', name, url: databaseUrl(serverUrl, name), drop };
}

export interface SqliteTestDatabase {
  kind: 'sqlite';
  /** The server's KAPITAN_DATA_DIR: the embedded SQLite file lives in it. */
  dataDir: string;
  /** No DATABASE_URL: unset means embedded SQLite. */
  url: undefined;
  /** Removes the data dir; idempotent. Also run by the file's afterAll. */
  drop(): Promise<void>;
}

/** A fresh, empty data dir under os.tmpdir() for a server with embedded SQLite. */
export async function createSqliteDatabase(): Promise<SqliteTestDatabase> {
  const dataDir = await makeTempDir('kapitan-e2e-data-');
  const drop = async (): Promise<void> => {
    await removeDir(dataDir);
    unregister();
  };
  const unregister = registerCleanup(`data dir ${dataDir}`, drop);
  return { kind: 'sqlite', dataDir, url: undefined, drop };
}

/** Runs `fn` on a connection to `serverUrl` (no database selected), then closes it. */
export async function withConnection<T>(serverUrl: string, fn: (connection: mysql.Connection) => Promise<T>): Promise<T> {
  const connection = await mysql.createConnection({ uri: serverUrl, connectTimeout: 5_000 });
  try {
    return await fn(connection);
  } finally {
    await connection.end();
  }
}

export function makeTempDir(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

/** Removes a directory unless KAPITAN_E2E_KEEP=1 (then prints where it stays). */
export async function removeDir(dir: string): Promise<void> {
  if (/^(1|true)$/i.test(process.env.KAPITAN_E2E_KEEP ?? '')) {
    process.stderr.write(`[e2e] KAPITAN_E2E_KEEP: leaving ${dir}\n`);
    return;
  }
  await fs.rm(dir, { recursive: true, force: true, maxRetries: 3 });
}
