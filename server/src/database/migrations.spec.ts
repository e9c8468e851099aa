import { DataSource } from 'typeorm';
import { createApp } from '../app.factory';
import { createTestApp, describeBothDatabases, signupUser, TestApp } from '../testing/test-app';
import { MIGRATIONS } from './migrations';

/** The tables of the connected database, without the engine's own. */
async function tableNames(db: DataSource): Promise<string[]> {
  const rows: { name: string }[] =
    db.options.type === 'mysql'
      ? await db.query('SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()')
      : await db.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'");
  return rows.map((r) => r.name).sort();
}

/** Every table and column the app's entities map, checked against what the migrations built. */
async function expectSchemaMatchesEntities(db: DataSource): Promise<void> {
  const runner = db.createQueryRunner();
  try {
    for (const entity of db.entityMetadatas) {
      const table = await runner.getTable(entity.tablePath);
      expect({ table: entity.tableName, exists: !!table }).toEqual({ table: entity.tableName, exists: true });
      const columns = new Map(table!.columns.map((c) => [c.name, c]));
      for (const column of entity.columns) {
        const found = columns.get(column.databaseName);
        const where = `${entity.tableName}.${column.databaseName}`;
        expect({ column: where, exists: !!found }).toEqual({ column: where, exists: true });
        expect({ column: where, nullable: found!.isNullable }).toEqual({ column: where, nullable: column.isNullable });
      }
      const primary = table!.primaryColumns.map((c) => c.name).sort();
      expect({ table: entity.tableName, primary }).toEqual({
        table: entity.tableName,
        primary: entity.primaryColumns.map((c) => c.databaseName).sort(),
      });
    }
  } finally {
    await runner.release();
  }
}

describeBothDatabases('migrations', (database) => {
  let t: TestApp;
  beforeAll(async () => {
    // A fresh database: the app applies every migration as it starts (never synchronize).
    t = await createTestApp({ database });
  });
  afterAll(() => t?.close());

  it('never synchronizes; the app ran every migration on start, in order', async () => {
    expect(t.db.options.synchronize).toBe(false);
    const applied: { name: string }[] = await t.db.query('SELECT name FROM migrations ORDER BY id');
    expect(applied.map((r) => r.name)).toEqual(MIGRATIONS.map((m) => m.name));
    expect(await t.db.showMigrations()).toBe(false);
  });

  it('built every table and column the entities use, with the same nullability and primary keys', async () => {
    const tables = await tableNames(t.db);
    for (const name of ['users', 'sessions', 'login_failures', 'projects', 'project_members']) expect(tables).toContain(name);
    for (const entity of t.db.entityMetadatas) expect(tables).toContain(entity.tableName);
    await expectSchemaMatchesEntities(t.db);
  });

  it('keeps the foundation foreign keys: sessions and memberships go with their user or project', async () => {
    const runner = t.db.createQueryRunner();
    try {
      const fks = async (table: string) =>
        (await runner.getTable(table))!.foreignKeys.map((fk) => `${fk.columnNames.join(',')}->${fk.referencedTableName}:${fk.onDelete}`).sort();
      expect(await fks('sessions')).toEqual(['userId->users:CASCADE']);
      expect(await fks('project_members')).toEqual(['projectId->projects:CASCADE', 'userId->users:CASCADE']);
    } finally {
      await runner.release();
    }
  });

  it('a second start on the migrated database (a restart, another node) changes nothing', async () => {
    const again = await createApp(t.config);
    try {
      await again.init();
      const applied: { name: string }[] = await t.db.query('SELECT name FROM migrations ORDER BY id');
      expect(applied.map((r) => r.name)).toEqual(MIGRATIONS.map((m) => m.name));
    } finally {
      await again.close();
    }
  });

  it('reverts every migration (down): the schema is empty again', async () => {
    await signupUser(t.http); // rows in the tables must not stop a revert
    for (let i = 0; i < MIGRATIONS.length; i++) await t.db.undoLastMigration({ transaction: 'each' });
    const [{ n }] = await t.db.query('SELECT COUNT(*) AS n FROM migrations');
    expect(Number(n)).toBe(0);
    // Only TypeORM's own bookkeeping table is left.
    expect(await tableNames(t.db)).toEqual(['migrations']);
  });

  it('applies them all again (up) and the app works on the result', async () => {
    const ran = await t.db.runMigrations({ transaction: 'each' });
    expect(ran.map((m) => m.name)).toEqual(MIGRATIONS.map((m) => m.name));
    await expectSchemaMatchesEntities(t.db);
    const { user } = await signupUser(t.http);
    // Fresh tables: the first account of the re-created schema is the admin again.
    expect(user.isAdmin).toBe(true);
  });
});
