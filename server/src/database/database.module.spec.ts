import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp } from '../app.factory';
import { loadConfig } from '../config/config';
import { describeBothDatabases, testMysqlUrl } from '../testing/test-app';
import { isTransientStartError } from './database.module';

/** Unit: which start-up failures are worth waiting out. */
describe('isTransientStartError', () => {
  it.each(['ECONNREFUSED', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'PROTOCOL_CONNECTION_LOST', 'ER_CON_COUNT_ERROR'])(
    'retries %s (the database is still coming up)',
    (code) => expect(isTransientStartError({ code })).toBe(true),
  );
  it.each(['ER_ACCESS_DENIED_ERROR', 'ER_BAD_DB_ERROR', 'ER_PARSE_ERROR', 'SQLITE_CANTOPEN', undefined])('fails at once on %s', (code) => {
    expect(isTransientStartError({ code })).toBe(false);
  });
  it('fails at once on a bad entity or migration (no code at all)', () => {
    expect(isTransientStartError(new Error('Data type "x" in "Entity.y" is not supported'))).toBe(false);
  });
});

describeBothDatabases('a start that cannot work', (database) => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'kapitan-start-'));
  });
  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  // Without the fast failure this would retry 9 × 3 s and then exit the whole test process.
  it('rejects with the database error at once instead of retrying or aborting the process', async () => {
    const config = loadConfig({ KAPITAN_DATA_DIR: dataDir, LOG_LEVEL: 'silent' });
    if (database === 'mysql') {
      const url = new URL(testMysqlUrl());
      url.pathname = '/kapitan_t_does_not_exist';
      config.database = { type: 'mysql', url: url.toString() };
    } else {
      // The database file's directory would have to be inside a regular file.
      writeFileSync(join(dataDir, 'a-file'), '');
      config.database = { type: 'sqlite', path: join(dataDir, 'a-file', 'kapitan.sqlite') };
    }
    const outcome = await createApp(config).then(
      async (app) => {
        await app.close();
        return new Error('the app started');
      },
      (err: unknown) => err,
    );
    // (Not toBeInstanceOf: errors from Node's own modules come from another realm under jest.)
    expect(String((outcome as Error)?.message)).toMatch(database === 'mysql' ? /Unknown database/ : /ENOTDIR|EEXIST|not a directory/i);
  }, 15_000);
});
