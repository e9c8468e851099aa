import { randomUUID } from 'node:crypto';
import { ExecutionEntity } from '../executions/execution.entity';
import { enrolMachine, setupProject } from '../testing/sockets';
import { createTestApp, describeBothDatabases, type TestApp } from '../testing/test-app';
import { entityInserts } from './multi-row';

describeBothDatabases('entityInserts: hand-written INSERTs store what the repository would', (database) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ database });
  });
  afterAll(() => t.close());

  const row = (projectId: string, machineId: string, over: Partial<ExecutionEntity> = {}): ExecutionEntity =>
    t.db.getRepository(ExecutionEntity).create({
      id: randomUUID(),
      runId: randomUUID(),
      projectId,
      machineId,
      status: 'dispatched',
      script: "#!/bin/sh\necho 'ünï ✓' \"$1\"\n",
      fileId: null,
      fileSha256: null,
      args: ['a b', '--x=1', ''],
      env: { MODE: 'fast', EMPTY: '' },
      secrets: ['DB_PASSWORD'],
      cwd: '/srv/app',
      timeoutSeconds: 600,
      expiresAt: new Date('2026-12-02T10:11:12.345Z'),
      createdBy: null,
      createdAt: new Date('2026-12-01T00:00:00.001Z'),
      dispatchedAt: new Date('2026-12-01T00:00:00.999Z'),
      startedAt: null,
      finishedAt: null,
      cancelRequestedAt: null,
      exitCode: null,
      signal: null,
      reason: null,
      lastSeq: 9_007_199_254_740_991,
      ...over,
    });

  it('every column, JSON, millisecond dates, nulls and a bigint read back equal; a missing value is refused before any statement', async () => {
    const p = await setupProject(t);
    const { machineId } = await enrolMachine(t, p);
    const viaRepository = row(p.projectId, machineId);
    const viaHand = row(p.projectId, machineId, { id: randomUUID(), createdBy: p.owner.userId, exitCode: 3, signal: 'SIGTERM', reason: 'r', lastSeq: 0 });
    await t.db.getRepository(ExecutionEntity).insert(viaRepository);
    await t.db.transaction(async (tx) => {
      for (const st of entityInserts(tx, ExecutionEntity, [viaHand])) await tx.query(st.sql, st.params);
    });
    const read = async (id: string) => t.db.getRepository(ExecutionEntity).findOneByOrFail({ id });
    const [a, b] = [await read(viaRepository.id), await read(viaHand.id)];
    expect(a).toEqual(viaRepository);
    expect(b).toEqual(viaHand);

    const missing = row(p.projectId, machineId);
    delete (missing as Partial<ExecutionEntity>).cwd;
    expect(() => entityInserts(t.db.manager, ExecutionEntity, [missing])).toThrow('executions.cwd has no value to insert');
  });
});
