import type { DataSource, EntityManager, EntityTarget, ObjectLiteral } from 'typeorm';

/**
 * Bound values per statement: half SQLite's limit (32,766), and well under a
 * MB of SQL for MySQL's max_allowed_packet with rows of short values.
 */
export const VALUES_PER_STATEMENT = 16_000;
/** And at most this much data (strings counted at 3 bytes a character), whatever the labels of a container weigh. */
export const BYTES_PER_STATEMENT = 4 * 1024 * 1024;

export type Dialect = 'mysql' | 'sqlite';

export function dialectOf(db: DataSource): Dialect {
  return db.options.type === 'better-sqlite3' || db.options.type === 'sqlite' ? 'sqlite' : 'mysql';
}

/**
 * Multi-row statements with bound parameters, written by hand: `head` +
 * `(?, …), (?, …)` + `tail`, at most VALUES_PER_STATEMENT values each. The query
 * builder's per-row work (entity metadata, parameter renaming) costs more
 * than the database does when thousands of agents report at once.
 */
export function multiRow(head: string, rows: readonly (readonly unknown[])[], tail = ''): { sql: string; params: unknown[] }[] {
  if (!rows.length) return [];
  const perStatement = Math.max(1, Math.floor(VALUES_PER_STATEMENT / rows[0]!.length));
  const tuple = `(${rows[0]!.map(() => '?').join(',')})`;
  const out: { sql: string; params: unknown[] }[] = [];
  let params: unknown[] = [];
  let n = 0;
  let bytes = 0;
  const cut = (): void => {
    if (!n) return;
    out.push({ sql: `${head} ${Array(n).fill(tuple).join(',')}${tail ? ` ${tail}` : ''}`, params });
    params = [];
    n = 0;
    bytes = 0;
  };
  for (const row of rows) {
    let size = 0;
    for (const v of row) size += typeof v === 'string' ? v.length * 3 + 4 : 12;
    if (n >= perStatement || (n && bytes + size > BYTES_PER_STATEMENT)) cut();
    for (const v of row) params.push(v);
    n++;
    bytes += size;
  }
  cut();
  return out;
}

/**
 * INSERT statements for whole entities through `multiRow`: every column the
 * entity maps, each value prepared by the driver exactly as the query
 * builder would (JSON, dates, transformers). Every column must have a value:
 * SQLite has no DEFAULT inside VALUES, so a missing one is a programming
 * error, not a default.
 */
export function entityInserts<T extends ObjectLiteral>(manager: EntityManager, target: EntityTarget<T>, rows: readonly T[]): { sql: string; params: unknown[] }[] {
  const { driver } = manager.connection;
  const meta = manager.connection.getMetadata(target);
  const columns = meta.columns.filter((c) => c.isInsert && !c.isVirtual && !c.isGenerated);
  const head = `INSERT INTO ${driver.escape(meta.tableName)} (${columns.map((c) => driver.escape(c.databaseName)).join(', ')}) VALUES`;
  return multiRow(
    head,
    rows.map((row) =>
      columns.map((c) => {
        const value: unknown = c.getEntityValue(row);
        if (value === undefined) throw new Error(`${meta.tableName}.${c.propertyName} has no value to insert`);
        return driver.preparePersistentValue(value, c);
      }),
    ),
  );
}
