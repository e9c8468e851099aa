import { dataSourceOptions } from './data-source';
import { MIGRATIONS } from './migrations';
import { openDataSource } from './open-data-source';
import { createScratchDatabase, type ScratchDatabase } from '../testing/test-app';

// MySQL only: the lock is MySQL's (SQLite is one node's file). Under CI=true a missing MySQL fails here.
describe('openDataSource on MySQL: nodes started together on an empty database', () => {
  let db: ScratchDatabase;
  beforeEach(async () => {
    db = await createScratchDatabase('mysql');
  });
  afterEach(() => db.drop());

  it('both start; each migration is applied exactly once', async () => {
    const options = dataSourceOptions(db.config);
    const opened = await Promise.allSettled([openDataSource(options), openDataSource(options), openDataSource(options)]);
    const failures = opened.filter((o) => o.status === 'rejected').map((o) => String((o as PromiseRejectedResult).reason));
    try {
      expect(failures).toEqual([]);
      const first = (opened[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof openDataSource>>>).value;
      const rows = (await first.query('SELECT name FROM migrations ORDER BY id')) as { name: string }[];
      expect(rows.map((r) => r.name)).toEqual(MIGRATIONS.map((m) => m.name));
    } finally {
      for (const o of opened) if (o.status === 'fulfilled') await o.value.destroy();
    }
  }, 60_000);
});
