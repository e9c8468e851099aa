import { DataSource, type DataSourceOptions } from 'typeorm';

/** How long a starting node waits for another node's migrations before it gives up. */
export const MIGRATION_LOCK_WAIT_SECONDS = 120;
// MySQL's user-level locks are server-wide: one per database, at most 64 characters.
const LOCK_NAME = `LEFT(CONCAT('kapitan-migrations:', DATABASE()), 64)`;

/**
 * Opens the database and brings its schema up to date. On MySQL the
 * migrations run under a named lock of this database: two nodes started
 * together on an empty database (`docker compose up` of two replicas) both
 * found no migration applied, both created the first tables, and the loser
 * failed its start with "Table … already exists". The node that waited finds
 * every migration applied and runs none. (SQLite is one node's file.)
 */
export async function openDataSource(options: DataSourceOptions): Promise<DataSource> {
  if (options.type !== 'mysql' || !options.migrationsRun) return new DataSource(options).initialize();
  const dataSource = await new DataSource({ ...options, migrationsRun: false }).initialize();
  try {
    // The lock belongs to this one connection, held until the migrations are done.
    const runner = dataSource.createQueryRunner();
    try {
      await runner.connect();
      const [{ got }] = (await runner.query(`SELECT GET_LOCK(${LOCK_NAME}, ?) AS got`, [MIGRATION_LOCK_WAIT_SECONDS])) as { got: unknown }[];
      if (Number(got) !== 1) {
        throw new Error(`another node has held this database's migration lock for over ${MIGRATION_LOCK_WAIT_SECONDS} s; not starting`);
      }
      try {
        await dataSource.runMigrations({ transaction: options.migrationsTransactionMode ?? 'each' });
      } finally {
        await runner.query(`SELECT RELEASE_LOCK(${LOCK_NAME})`).catch(() => undefined);
      }
    } finally {
      await runner.release();
    }
  } catch (err) {
    await dataSource.destroy().catch(() => undefined);
    throw err;
  }
  return dataSource;
}
