/**
 * A fan-out's output and its starts at once (MariaDB): each output chunk's
 * foreign key share-locks its execution's row, a group of starts locks the
 * same rows FOR UPDATE, so the writer must take them in the group's order
 * (output-writer.service.ts). Round after round, every chunk of every
 * execution is written in no particular order beside every start: each
 * write commits on its first statement (InnoDB never rolls one back), each
 * start applies once, and every chunk is stored once. On SQLite the same
 * flows run on its one connection.
 */
import { randomUUID } from 'node:crypto';
import { In, Repository } from 'typeorm';
import { PresenceService } from '../machines/presence.service';
import { shuffled } from '../testing/shuffled';
import { bearer, createTestApp, describeBothDatabases, TestApp } from '../testing/test-app';
import { enrolMachine, FACTS, setupProject, type SpecProject } from '../testing/sockets';
import { ExecutionChunkEntity } from './execution.entity';
import { ExecutionLifecycleService } from './execution-lifecycle.service';
import { ExecutionTransitions } from './execution-transitions';
import { OutputWriter } from './output-writer.service';

const MACHINES = 120;
const ROUNDS = 20;
const CHUNKS = 3;


describeBothDatabases('output chunks written beside grouped starts', (database) => {
  let t: TestApp;
  let p: SpecProject;
  let lifecycle: ExecutionLifecycleService;
  let writer: OutputWriter;
  let chunks: Repository<ExecutionChunkEntity>;

  beforeAll(async () => {
    t = await createTestApp({ database });
    p = await setupProject(t);
    const presence = t.app.get(PresenceService);
    const profile = { labels: {}, createdAt: new Date() };
    for (let i = 0; i < MACHINES; i++) {
      const { machineId } = await enrolMachine(t, p);
      await presence.markOnline({ machineId, projectId: p.projectId }, profile, `s-${randomUUID()}`, FACTS);
    }
    lifecycle = t.app.get(ExecutionLifecycleService);
    writer = t.app.get(OutputWriter);
    chunks = t.db.getRepository(ExecutionChunkEntity);
  }, 120_000);
  afterAll(() => t?.close());

  test(`${ROUNDS} rounds: ${MACHINES} executions' output in no order beside their starts; no statement rolled back, each chunk stored once`, async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const created = await t.http.post(`/api/projects/${p.projectId}/executions`).set(bearer(p.owner.token)).send({ script: 'true', targets: { all: true } }).expect(201);
      const executions = created.body.executions as { id: string; machineId: string }[];
      expect(executions).toHaveLength(MACHINES);
      const startedAt = new Date(Date.now() - 1000).toISOString();
      // In one turn: every start (one group) and every execution's chunks, one write each, shuffled (one multi-row INSERT).
      const starts = shuffled(executions).map((e) => lifecycle.started(e.machineId, { executionId: e.id, startedAt }));
      const writes = shuffled(executions).map((e) =>
        writer.write(
          e.id,
          Array.from({ length: CHUNKS }, (_, seq) => ({ seq, stream: 'stdout' as const, data: `${e.id} ${seq}\n` })),
        ),
      );
      const [started, written] = await Promise.all([Promise.all(starts), Promise.allSettled(writes)]);
      expect(started.every((s) => s === true)).toBe(true);
      expect(written.filter((w) => w.status === 'rejected')).toEqual([]);
      const stored = await chunks.find({ where: { executionId: In(executions.map((e) => e.id)) } });
      expect(stored).toHaveLength(MACHINES * CHUNKS);
      for (const c of stored) expect(c.data).toBe(`${c.executionId} ${c.seq}\n`);
    }
    // The lock order held: InnoDB never picked the writer's statement (or a group of starts) as a deadlock victim.
    expect(writer.statementsRetried).toBe(0);
    expect(t.app.get(ExecutionTransitions).groupsRolledBack).toBe(0);
  }, 180_000);

  test(`${ROUNDS} rounds: a run's starts grouped while the next run on the same machines is inserted; no group rolled back`, async () => {
    const transitions = t.app.get(ExecutionTransitions);
    const before = transitions.groupsRolledBack;
    const create = async (): Promise<{ id: string; machineId: string }[]> =>
      (await t.http.post(`/api/projects/${p.projectId}/executions`).set(bearer(p.owner.token)).send({ script: 'true', targets: { all: true } }).expect(201)).body.executions;
    let current = await create();
    for (let round = 0; round < ROUNDS; round++) {
      const startedAt = new Date(Date.now() - 1000).toISOString();
      const [started, next] = await Promise.all([Promise.all(shuffled(current).map((e) => lifecycle.started(e.machineId, { executionId: e.id, startedAt }))), create()]);
      expect(started.every((s) => s === true)).toBe(true);
      current = next;
    }
    expect(transitions.groupsRolledBack - before).toBe(0);
  }, 180_000);
});
