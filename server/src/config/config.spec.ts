import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ensureServerBuilt, SERVER_MAIN } from '../testing/test-app';
import { ConfigError, EnvSchema, loadConfig } from './config';

/**
 * The environment is parsed once at start; a bad variable stops the process
 * with a ConfigError naming it. No I/O except the temp data directory and,
 * in the last block, one real `node dist/main.js`.
 */
describe('loadConfig', () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'kapitan-config-'));
  });
  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  const load = (env: Record<string, string | undefined>) => loadConfig({ KAPITAN_DATA_DIR: dataDir, ...env });

  function expectConfigError(env: Record<string, string | undefined>, variable: string): ConfigError {
    let caught: unknown;
    try {
      load(env);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const message = (caught as ConfigError).message;
    // The line of the report names the variable, as in "  PORT: expected number".
    expect(message).toMatch(new RegExp(`^  ${variable}: .+`, 'm'));
    return caught as ConfigError;
  }
  test('audit retention: keep forever unless KAPITAN_AUDIT_RETENTION_DAYS is a positive whole number of days', () => {
    expect(load({}).auditRetentionDays).toBeNull();
    expect(load({ KAPITAN_AUDIT_RETENTION_DAYS: '0' }).auditRetentionDays).toBeNull();
    expect(load({ KAPITAN_AUDIT_RETENTION_DAYS: '365' }).auditRetentionDays).toBe(365);
    for (const bad of ['-1', '1.5', 'forever', '36501']) expectConfigError({ KAPITAN_AUDIT_RETENTION_DAYS: bad }, 'KAPITAN_AUDIT_RETENTION_DAYS');
  });
  test('benchmark instrumentation is off unless KAPITAN_BENCH=1, and its interval is bounded', () => {
    expect(load({}).bench).toBeNull();
    expect(load({ KAPITAN_BENCH: '0' }).bench).toBeNull();
    expect(load({ KAPITAN_BENCH: '1' }).bench).toEqual({ intervalMs: 1000 });
    expect(load({ KAPITAN_BENCH: '1', KAPITAN_BENCH_INTERVAL_MS: '250' }).bench).toEqual({ intervalMs: 250 });
    expectConfigError({ KAPITAN_BENCH: 'yes' }, 'KAPITAN_BENCH');
    expectConfigError({ KAPITAN_BENCH_INTERVAL_MS: '5' }, 'KAPITAN_BENCH_INTERVAL_MS');
  });


  it.each([
    ['PORT', { PORT: 'abc' }],
    ['PORT', { PORT: '70000' }],
    ['PORT', { PORT: '-1' }],
    ['DATABASE_URL', { DATABASE_URL: 'postgres://kapitan:secret@db:5432/kapitan' }],
    ['DATABASE_URL', { DATABASE_URL: 'not a url' }],
    ['JWT_SECRET', { JWT_SECRET: 'too-short' }],
    ['JWT_SECRET', { REDIS_URL: 'redis://127.0.0.1:6379' }],
    ['KAPITAN_SECRETS_KEY', { REDIS_URL: 'redis://127.0.0.1:6379', JWT_SECRET: 'x'.repeat(32) }],
    ['REDIS_URL', { REDIS_URL: 'http://127.0.0.1:6379', JWT_SECRET: 'x'.repeat(32) }],
    ['LOG_LEVEL', { LOG_LEVEL: 'loud' }],
    ['JWT_TTL_SECONDS', { JWT_TTL_SECONDS: '5' }],
    ['LOGIN_MAX_FAILURES', { LOGIN_MAX_FAILURES: 'many' }],
    ['LOGIN_WINDOW_SECONDS', { LOGIN_WINDOW_SECONDS: '0' }],
    ['TRUST_PROXY', { TRUST_PROXY: 'everyone' }],
    ['TRUST_PROXY', { TRUST_PROXY: '10.0.0.0/33' }],
    ['TRUST_PROXY', { TRUST_PROXY: 'loopback, 300.1.1.1' }],
    ['KAPITAN_SECRETS_KEY', { KAPITAN_SECRETS_KEY: 'hunter2' }],
    ['KAPITAN_SECRETS_KEY', { KAPITAN_SECRETS_KEY: 'ab'.repeat(31) }],
    ['KAPITAN_SECRETS_KEY', { KAPITAN_SECRETS_KEY: 'zz'.repeat(32) }],
    ['KAPITAN_SECRETS_KEY', { KAPITAN_SECRETS_KEY: Buffer.alloc(31, 7).toString('base64') }],
    ['KAPITAN_SECRETS_KEY', { KAPITAN_SECRETS_KEY: Buffer.alloc(33, 7).toString('base64') }],
    ['KAPITAN_SHUTDOWN_TIMEOUT_SECONDS', { KAPITAN_SHUTDOWN_TIMEOUT_SECONDS: '0' }],
    ['KAPITAN_SHUTDOWN_TIMEOUT_SECONDS', { KAPITAN_SHUTDOWN_TIMEOUT_SECONDS: 'soon' }],
    ['KAPITAN_SHUTDOWN_TIMEOUT_SECONDS', { KAPITAN_SHUTDOWN_TIMEOUT_SECONDS: '601' }],
  ])('refuses a bad %s (%j)', (variable, env) => {
    expectConfigError(env, variable);
  });

  it('names every bad variable at once, not only the first', () => {
    const err = expectConfigError({ PORT: 'abc', LOG_LEVEL: 'loud' }, 'PORT');
    expect(err.message).toMatch(/^ {2}LOG_LEVEL: /m);
  });

  it('says why REDIS_URL needs KAPITAN_SECRETS_KEY', () => {
    const err = expectConfigError({ REDIS_URL: 'redis://127.0.0.1:6379', JWT_SECRET: 'x'.repeat(32) }, 'KAPITAN_SECRETS_KEY');
    expect(err.message).toMatch(/REDIS_URL.*every node must share it/);
  });

  it('says why REDIS_URL needs JWT_SECRET', () => {
    const err = expectConfigError({ REDIS_URL: 'redis://127.0.0.1:6379' }, 'JWT_SECRET');
    expect(err.message).toContain('REDIS_URL');
  });

  it('applies the documented defaults', () => {
    const c = load({});
    expect(c.port).toBe(8080);
    expect(c.host).toBe('0.0.0.0');
    expect(c.dataDir).toBe(resolve(dataDir));
    expect(c.database).toEqual({ type: 'sqlite', path: join(resolve(dataDir), 'kapitan.sqlite') });
    expect(c.redisUrl).toBeUndefined();
    expect(c.jwt.ttlSeconds).toBe(12 * 3600);
    expect(c.logLevel).toBe('info');
    expect(c.login).toEqual({ maxFailures: 5, windowSeconds: 60, accountMaxFailures: 50 });
    expect(c.lostAfterSeconds).toBe(600);
    expect(c.agentEventsPerSecond).toBe(500);
    expect(c.nodeId).toMatch(/^[0-9a-f]{12}$/);
    expect(c.trustProxy).toBe('loopback');
    expect(c.shutdownTimeoutMs).toBe(10_000);
    expect(load({ KAPITAN_SHUTDOWN_TIMEOUT_SECONDS: '25' }).shutdownTimeoutMs).toBe(25_000);
    expect(c.files).toEqual({ dir: join(resolve(dataDir), 'files'), maxBytes: { script: 1024 * 1024, file: 4 * 1024 ** 3, image: 32 * 1024 ** 3 } });
    // The data directory's own default is relative to the working directory.
    expect(EnvSchema.parse({}).KAPITAN_DATA_DIR).toBe('./data');
  });

  it('treats an empty variable as unset (so `PORT=` in a compose file means the default)', () => {
    expect(load({ PORT: '', DATABASE_URL: '', LOG_LEVEL: '' })).toMatchObject({ port: 8080, logLevel: 'info', database: { type: 'sqlite' } });
  });

  it('reads the variables it is given', () => {
    const c = load({
      PORT: '9000',
      HOST: '127.0.0.1',
      DATABASE_URL: 'mysql://kapitan:pw@db:3306/kapitan',
      REDIS_URL: 'rediss://cache:6380',
      JWT_SECRET: 's'.repeat(40),
      JWT_TTL_SECONDS: '3600',
      LOG_LEVEL: 'debug',
      LOGIN_MAX_FAILURES: '3',
      LOGIN_WINDOW_SECONDS: '30',
      KAPITAN_NODE_ID: 'node-a',
      KAPITAN_SECRETS_KEY: 'aa'.repeat(32),
    });
    expect(c).toMatchObject({
      port: 9000,
      host: '127.0.0.1',
      database: { type: 'mysql', url: 'mysql://kapitan:pw@db:3306/kapitan' },
      redisUrl: 'rediss://cache:6380',
      jwt: { secret: 's'.repeat(40), ttlSeconds: 3600 },
      logLevel: 'debug',
      login: { maxFailures: 3, windowSeconds: 30 },
      nodeId: 'node-a',
    });
    expect(c.secrets.key.equals(Buffer.alloc(32, 0xaa))).toBe(true);
    // A given secret is used as it is; nothing is written for it.
    expect(existsSync(join(dataDir, 'jwt-secret'))).toBe(false);
    expect(existsSync(join(dataDir, 'secrets-key'))).toBe(false);
  });

  it('reads the file store variables, sizes in bytes or with a K/M/G/T suffix', () => {
    const c = load({ KAPITAN_FILES_DIR: '/srv/kapitan-files', KAPITAN_FILES_MAX_SCRIPT_BYTES: '64K', KAPITAN_FILES_MAX_FILE_BYTES: '1048576', KAPITAN_FILES_MAX_IMAGE_BYTES: '20GiB' });
    expect(c.files).toEqual({ dir: '/srv/kapitan-files', maxBytes: { script: 64 * 1024, file: 1024 * 1024, image: 20 * 1024 ** 3 } });
  });

  it.each(['0', '-5', '1.5G', 'lots', '10X', '99999999999T'])('refuses KAPITAN_FILES_MAX_FILE_BYTES=%j, naming it', (v) => {
    expect(() => load({ KAPITAN_FILES_MAX_FILE_BYTES: v })).toThrow(/KAPITAN_FILES_MAX_FILE_BYTES: must be a positive byte count/);
  });

  it.each([
    ['false', false],
    ['true', true],
    ['2', 2],
    ['loopback', 'loopback'],
    ['loopback, 10.0.0.0/8, fd00::/8', 'loopback, 10.0.0.0/8, fd00::/8'],
    ['192.0.2.10', '192.0.2.10'],
  ])('reads TRUST_PROXY=%j as %j', (value, expected) => {
    expect(load({ TRUST_PROXY: value }).trustProxy).toEqual(expected);
  });

  it('generates the JWT secret once, keeps it 0600 in the data dir and reuses it', () => {
    const first = load({}).jwt.secret;
    expect(first.length).toBeGreaterThanOrEqual(32);
    const file = join(dataDir, 'jwt-secret');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8').trim()).toBe(first);
    // A second start (and a third) signs with the same key: nobody is logged out by a restart.
    expect(load({}).jwt.secret).toBe(first);
    expect(load({}).jwt.secret).toBe(first);
    // Another data directory is another installation with its own key.
    const other = mkdtempSync(join(tmpdir(), 'kapitan-config-'));
    try {
      expect(loadConfig({ KAPITAN_DATA_DIR: other }).jwt.secret).not.toBe(first);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('replaces a kept secret that is too weak to use', () => {
    const file = join(dataDir, 'jwt-secret');
    writeFileSync(file, 'short\n', { mode: 0o644 });
    const secret = load({}).jwt.secret;
    expect(secret).not.toBe('short');
    expect(secret.length).toBeGreaterThanOrEqual(32);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('reads KAPITAN_SECRETS_KEY as hex or base64; the same key has the same id; nothing is written for it', () => {
    const key = Buffer.from(Array.from({ length: 32 }, (_, i) => i * 7));
    const fromHex = load({ KAPITAN_SECRETS_KEY: key.toString('hex') }).secrets;
    const fromBase64 = load({ KAPITAN_SECRETS_KEY: key.toString('base64') }).secrets;
    const fromBase64url = load({ KAPITAN_SECRETS_KEY: ` ${key.toString('base64url')}\n` }).secrets;
    for (const s of [fromHex, fromBase64, fromBase64url]) expect(s.key.equals(key)).toBe(true);
    expect(fromHex.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(new Set([fromHex.keyId, fromBase64.keyId, fromBase64url.keyId]).size).toBe(1);
    // The id is a fingerprint, not the key.
    expect(key.toString('hex')).not.toContain(fromHex.keyId);
    expect(load({ KAPITAN_SECRETS_KEY: Buffer.alloc(32, 1).toString('hex') }).secrets.keyId).not.toBe(fromHex.keyId);
    expect(existsSync(join(dataDir, 'secrets-key'))).toBe(false);
  });

  it('generates the secrets key once, keeps it 0600 in the data dir and reuses it', () => {
    const first = load({}).secrets;
    expect(first.key.length).toBe(32);
    const file = join(dataDir, 'secrets-key');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(Buffer.from(readFileSync(file, 'utf8').trim(), 'base64').equals(first.key)).toBe(true);
    const again = load({}).secrets;
    expect(again.key.equals(first.key)).toBe(true);
    expect(again.keyId).toBe(first.keyId);
    // No temporary file is left beside it.
    expect(readdirSync(dataDir).filter((f) => f.startsWith('secrets-key'))).toEqual(['secrets-key']);
    const other = mkdtempSync(join(tmpdir(), 'kapitan-config-'));
    try {
      expect(loadConfig({ KAPITAN_DATA_DIR: other }).secrets.keyId).not.toBe(first.keyId);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('refuses to start on a kept secrets key it cannot read, naming the variable and the file, and leaves the file alone', () => {
    const file = join(dataDir, 'secrets-key');
    writeFileSync(file, 'not a key\n', { mode: 0o600 });
    const err = expectConfigError({}, 'KAPITAN_SECRETS_KEY');
    expect(err.message).toContain(file);
    // Replacing it would lose every stored secret for good.
    expect(readFileSync(file, 'utf8')).toBe('not a key\n');
    // An explicit key does not need the file.
    expect(load({ KAPITAN_SECRETS_KEY: Buffer.alloc(32, 3).toString('hex') }).secrets.key.length).toBe(32);
  });

  it('creates the data directory owner-only', () => {
    const nested = join(dataDir, 'a', 'b');
    expect(load({ KAPITAN_DATA_DIR: nested }).dataDir).toBe(nested);
    expect(statSync(nested).mode & 0o077).toBe(0);
  });
});

describe('the server process with a bad variable', () => {
  // Builds server/dist (and shared/dist) first when missing or older than the sources.
  beforeAll(() => ensureServerBuilt(), 180_000);

  it('exits with code 2 and a message naming PORT', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'kapitan-config-'));
    try {
      const child = spawn(process.execPath, [SERVER_MAIN], {
        // Only what the process needs: nothing from the developer's shell (a DATABASE_URL, say) leaks in.
        env: { PATH: process.env.PATH, PORT: 'abc', KAPITAN_DATA_DIR: dataDir, LOG_LEVEL: 'silent' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const code = await new Promise<number | null>((res, rej) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          rej(new Error(`the server did not exit within 20 s; stderr so far: ${stderr}`));
        }, 20_000);
        child.on('close', (c) => {
          clearTimeout(timer);
          res(c);
        });
      });
      expect(code).toBe(2);
      expect(stderr).toMatch(/^ {2}PORT: /m);
      expect(stderr).toContain('Invalid configuration');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
