import fs from 'node:fs';
import {
  createSqliteDatabase,
  createTestDatabase,
  databaseUrl,
  mysqlServerUrl,
  probeMysql,
  probeMysqlSync,
  requireMysql,
  withConnection,
} from './database';
import { runCleanups } from './cleanup';
import { describeOrSkip } from './requirements';

const UNREACHABLE = 'mysql://root@127.0.0.1:1';

async function databaseExists(name: string): Promise<boolean> {
  const [rows] = await withConnection(mysqlServerUrl(), (c) => c.query('SHOW DATABASES LIKE ?', [name]));
  return (rows as unknown[]).length === 1;
}

describe('the skip rule for MariaDB', () => {
  const saved = process.env.CI;
  afterEach(() => {
    if (saved === undefined) delete process.env.CI;
    else process.env.CI = saved;
  });

  it('under CI=true an unreachable server is a failure', () => {
    process.env.CI = 'true';
    expect(() => requireMysql(UNREACHABLE)).toThrow(/MariaDB\/MySQL .* unavailable: cannot query mysql:\/\/root@127\.0\.0\.1:1.*CI=true/s);
  });

  it('locally it is a printed skip reason', () => {
    delete process.env.CI;
    const write = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(requireMysql(UNREACHABLE)).toMatch(/unavailable: cannot query/);
      expect(write).toHaveBeenCalledWith(expect.stringMatching(/SKIP .*cannot query mysql:\/\/root@127\.0\.0\.1:1/));
    } finally {
      write.mockRestore();
    }
  });

  it('the async and the sync probe agree on an unreachable server', async () => {
    expect(await probeMysql(UNREACHABLE, 1_000)).toMatch(/ECONNREFUSED|connect/);
    expect(probeMysqlSync(UNREACHABLE, 1_000)).toMatch(/ECONNREFUSED|connect/);
  });

  it('a password in the URL never appears in the reason', async () => {
    expect(await probeMysql('mysql://root:hunter2@127.0.0.1:1', 1_000)).not.toContain('hunter2');
  });
});

describe('databaseUrl', () => {
  it('puts the database name in the path', () => {
    expect(databaseUrl('mysql://root@127.0.0.1:3306', 'kapitan_e2e_x')).toBe('mysql://root@127.0.0.1:3306/kapitan_e2e_x');
    expect(databaseUrl('mysql://u:p@db:3307/other', 'k')).toBe('mysql://u:p@db:3307/k');
  });
});

describeOrSkip(requireMysql())('createTestDatabase (real MariaDB)', () => {
  it('creates a uniquely named empty database and drops it', async () => {
    const [a, b] = await Promise.all([createTestDatabase(), createTestDatabase()]);
    expect(a.name).toMatch(/^kapitan_e2e_[a-z0-9]+_[0-9a-f]{8}$/);
    expect(a.name).not.toBe(b.name);
    expect(a.url).toBe(databaseUrl(mysqlServerUrl(), a.name));
    expect(await databaseExists(a.name)).toBe(true);

    // The URL is what a server gets as DATABASE_URL: it must select the database.
    const [rows] = await withConnection(a.url, (c) => c.query('SELECT DATABASE() AS db, COUNT(*) AS tables FROM information_schema.tables WHERE table_schema = DATABASE()'));
    expect(rows).toEqual([{ db: a.name, tables: 0 }]);

    await a.drop();
    await a.drop(); // idempotent
    expect(await databaseExists(a.name)).toBe(false);
    expect(await databaseExists(b.name)).toBe(true);
    await runCleanups(); // what afterAll does: b goes too
    expect(await databaseExists(b.name)).toBe(false);
  });
});

describe('createSqliteDatabase', () => {
  it('is a fresh empty data dir, removed by drop', async () => {
    const db = await createSqliteDatabase();
    expect(db.url).toBeUndefined();
    expect(fs.readdirSync(db.dataDir)).toEqual([]);
    await db.drop();
    expect(fs.existsSync(db.dataDir)).toBe(false);
  });
});
