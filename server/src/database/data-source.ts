import Sqlite from 'better-sqlite3';
import { DataSourceOptions } from 'typeorm';
import { DatabaseConfig } from '../config/config';
import { MIGRATIONS } from './migrations';
import { QueryLogger } from './query-logger';

/** One description of the database for the app, the tests and the migration checks. */
export function dataSourceOptions(db: DatabaseConfig): DataSourceOptions {
  const common = {
    migrations: MIGRATIONS,
    migrationsRun: true,
    migrationsTransactionMode: 'each' as const,
    synchronize: false,
    logging: ['error' as const, 'warn' as const, 'migration' as const],
    logger: new QueryLogger(),
    maxQueryExecutionTime: 2000,
  };
  if (db.type === 'sqlite') {
    return {
      ...common,
      type: 'better-sqlite3',
      // The server's own better-sqlite3 (13.x: N-API; 12.x aborts the process on Node 24 when
      // a statement is garbage-collected), handed over rather than looked up from TypeORM's folder.
      driver: Sqlite,
      database: db.path,
      enableWAL: true,
      // Several writers (HTTP, output batches) share the file; wait instead of failing with SQLITE_BUSY.
      prepareDatabase: (conn: { pragma: (s: string) => unknown }) => {
        conn.pragma('busy_timeout = 5000');
        conn.pragma('foreign_keys = ON');
        conn.pragma('synchronous = NORMAL');
      },
    };
  }
  return {
    ...common,
    type: 'mysql',
    url: db.url,
    charset: 'utf8mb4_unicode_ci',
    timezone: 'Z',
    extra: { connectionLimit: 20 },
  };
}
