/**
 * The stored log on both databases: chunks written through the real batching
 * writer, read back in pages with their gaps named, and the rule of when a
 * log is complete (design invariant 2, threat model T16).
 */
import { randomUUID } from 'node:crypto';
import type { OutputChunk } from '@kapitan/shared';
import { DataSource, Repository } from 'typeorm';
import { bearer, createTestApp, describeBothDatabases, TestApp } from '../testing/test-app';
import { enrolMachine, setupProject, type SpecProject } from '../testing/sockets';
import { ExecutionLogService } from './execution-log.service';
import { ExecutionEntity } from './execution.entity';
import { OutputWriter } from './output-writer.service';

describeBothDatabases('execution log', (database) => {
  let t: TestApp;
  let p: SpecProject;
  let logs: ExecutionLogService;
  let writer: OutputWriter;
  let rows: Repository<ExecutionEntity>;

  beforeAll(async () => {
    t = await createTestApp({ database });
    p = await setupProject(t);
    await enrolMachine(t, p);
    logs = t.app.get(ExecutionLogService);
    writer = t.app.get(OutputWriter);
    rows = t.db.getRepository(ExecutionEntity);
  });
  afterAll(() => t?.close());

  const execution = async (): Promise<ExecutionEntity> => {
    const id = (await t.http.post(`/api/projects/${p.projectId}/executions`).set(bearer(p.owner.token)).send({ script: 'true', targets: { all: true } }).expect(201)).body
      .executions[0].id;
    return rows.findOneByOrFail({ id });
  };
  const chunk = (seq: number, data = `c${seq}`): OutputChunk => ({ seq, stream: seq % 2 ? 'stderr' : 'stdout', data });
  const finish = async (e: ExecutionEntity, lastSeq: number | null): Promise<ExecutionEntity> => {
    await rows.update({ id: e.id }, { status: 'succeeded', lastSeq, finishedAt: new Date() });
    return rows.findOneByOrFail({ id: e.id });
  };

  test('a gap inside the stored chunks is named, not closed; the log is not complete', async () => {
    const e = await execution();
    await writer.write(e.id, [chunk(0), chunk(1), chunk(3)]);
    const page = await logs.logPage(await finish(e, 3), 0, 100);
    expect(page.chunks.map((c) => c.seq)).toEqual([0, 1, 3]);
    expect(page.gaps).toEqual([{ fromSeq: 2, toSeq: 2 }]);
    expect(page.complete).toBe(false);
    expect(page.nextSeq).toBe(4);
  });

  test('chunks missing at the tail (up to the agent-reported lastSeq) are a gap too', async () => {
    const e = await execution();
    await writer.write(e.id, [chunk(0)]);
    const page = await logs.logPage(await finish(e, 2), 0, 100);
    expect(page.gaps).toEqual([{ fromSeq: 1, toSeq: 2 }]);
    expect(page.complete).toBe(false);
  });

  test('complete only when final, every chunk up to lastSeq stored and the page not cut short', async () => {
    const e = await execution();
    await writer.write(e.id, [chunk(2), chunk(0), chunk(1)]);
    const running = await rows.findOneByOrFail({ id: e.id });
    expect((await logs.logPage(running, 0, 100)).complete).toBe(false); // not final yet
    const done = await finish(e, 2);
    expect(await logs.logPage(done, 0, 100)).toMatchObject({ gaps: [], complete: true, nextSeq: 3 });
    // A full page may have more behind it: not complete, and the next page starts after it.
    expect(await logs.logPage(done, 0, 2)).toMatchObject({ complete: false, nextSeq: 2 });
    expect(await logs.logPage(done, 2, 2)).toMatchObject({ complete: true, chunks: [chunk(2)] });
    // No output at all (lastSeq -1 from the agent, or none reported): complete and empty.
    expect(await logs.logPage(await finish(await execution(), -1), 0, 100)).toMatchObject({ chunks: [], gaps: [], complete: true });
  });

  test('as text, the log names each missing range where it is', async () => {
    const e = await execution();
    await writer.write(e.id, [chunk(0, 'a\n'), chunk(2, 'c\n')]);
    await finish(e, 3);
    let text = '';
    for await (const part of logs.logText(p.owner.userId, e.id)) text += part;
    expect(text).toBe('a\n\n[kapitan: output chunks 1-1 are missing]\nc\n\n[kapitan: output chunks 3-3 are missing]\n');
  });

  test('the writer stores each (execution, seq) once, resolving every write once its rows are committed', async () => {
    const e = await execution();
    const writes = [
      writer.write(e.id, [chunk(0, 'first'), chunk(1)]),
      writer.write(e.id, [chunk(0, 'resent')]),
      writer.write(e.id, [chunk(1, 'resent'), chunk(2)]),
    ];
    await Promise.all(writes);
    const page = await logs.logPage(await finish(e, 2), 0, 100);
    expect(page.chunks).toEqual([chunk(0, 'first'), chunk(1), chunk(2)]);
  });

  test('a large burst is batched into few statements and all of it is stored, in order', async () => {
    const e = await execution();
    const n = 5_000; // past the writer's flush-at-once threshold and its rows per statement
    const writes = Array.from({ length: n / 50 }, (_, w) => writer.write(e.id, Array.from({ length: 50 }, (_, i) => chunk(w * 50 + i, 'x'.repeat(100)))));
    await Promise.all(writes);
    const stored = await t.db.query('SELECT COUNT(*) AS n, MIN(seq) AS lo, MAX(seq) AS hi FROM execution_chunks WHERE executionId = ?', [e.id]);
    expect(stored[0]).toMatchObject({ n: expect.anything() });
    expect([Number(stored[0].n), Number(stored[0].lo), Number(stored[0].hi)]).toEqual([n, 0, n - 1]);
    await writer.flush(); // nothing pending: resolves at once
  });

  describe('with the batch timer frozen', () => {
    // Only setTimeout is faked: the database drivers' I/O and setImmediate run as usual, so a write
    // that waited on the coalescing timer would never commit and the test would time out.
    beforeEach(() => jest.useFakeTimers({ doNotFake: ['setImmediate', 'clearImmediate', 'setInterval', 'clearInterval', 'nextTick', 'queueMicrotask', 'performance', 'hrtime', 'Date'] }));
    afterEach(() => jest.useRealTimers());

    test('a write to an idle writer is committed at once (leading edge), not after the coalescing window', async () => {
      const e = await execution();
      const idle = new OutputWriter(t.db);
      await idle.write(e.id, [chunk(0, 'first')]);
      expect((await logs.logPage(e, 0, 10)).chunks).toEqual([chunk(0, 'first')]);
    });

    test("a finish's flush of its execution never waits on the timer, and what follows the first batch is coalesced", async () => {
      const e = await execution();
      const w = new OutputWriter(t.db);
      const statements = jest.spyOn(t.db, 'query');
      await w.write(e.id, [chunk(0)]);
      // Right behind the first batch: coalesced into one statement (the trailing edge), which the flush sends at once.
      const later = [w.write(e.id, [chunk(1)]), w.write(e.id, [chunk(2)])];
      await w.flushExecution(e.id);
      await Promise.all(later);
      const inserts = statements.mock.calls.filter(([sql]) => /^INSERT/i.test(String(sql)));
      statements.mockRestore();
      expect((await logs.logPage(e, 0, 10)).chunks).toEqual([chunk(0), chunk(1), chunk(2)]);
      // SQLite writes through its own prepared statement, not dataSource.query.
      if (database === 'mysql') expect(inserts).toHaveLength(2);
    });
  });

  test('flushExecution fails when a write of that execution was not stored, and ignores other executions', async () => {
    const e = await execution();
    await writer.flushExecution(e.id); // nothing pending: resolves at once
    // A writer whose database is not connected: every statement fails.
    const broken = new OutputWriter(new DataSource(t.db.options));
    const refused = broken.write(e.id, [chunk(0)]);
    refused.catch(() => undefined);
    await broken.flushExecution(randomUUID()); // another execution: nothing to wait for
    await expect(broken.flushExecution(e.id)).rejects.toThrow();
    await expect(refused).rejects.toThrow();
    expect((await logs.logPage(e, 0, 10)).chunks).toEqual([]);
  });

  test('a viewer joining gets what this node already took in: the pending batch is committed before history is read', async () => {
    const e = await execution();
    const pending = writer.write(e.id, [chunk(0, 'just now')]);
    const page = await logs.historyForJoin(e, 0, 100);
    expect(page.chunks).toEqual([chunk(0, 'just now')]);
    await pending;
  });
});
