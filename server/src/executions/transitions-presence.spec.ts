/**
 * Execution transitions grouped into one transaction (MariaDB) while the
 * same machines' presence is written in bulk, both at once, round after
 * round: a status change share-locks the execution's machine row (the
 * foreign key's index changes), presence locks many machine rows per
 * statement, so the two must take them in one order (execution-transitions.ts).
 * Every start and finish applies exactly once, none is lost to a deadlock,
 * and presence ends as the last hellos left it. On SQLite the same flows run
 * one statement each.
 */
import { randomUUID } from 'node:crypto';
import { In, Repository } from 'typeorm';
import type { DomainEvents } from '../common/domain-events';
import { DomainEventsService } from '../common/events.service';
import { MachineEntity } from '../machines/machine.entity';
import { PresenceService } from '../machines/presence.service';
import { shuffled } from '../testing/shuffled';
import { bearer, createTestApp, describeBothDatabases, TestApp } from '../testing/test-app';
import { enrolMachine, FACTS, setupProject, type SpecProject } from '../testing/sockets';
import { ExecutionLifecycleService } from './execution-lifecycle.service';
import { ExecutionTransitions } from './execution-transitions';
import { ExecutionEntity } from './execution.entity';

const MACHINES = 120;
const ROUNDS = 10;


describeBothDatabases('execution transitions beside bulk presence writes', (database) => {
  let t: TestApp;
  let p: SpecProject;
  let machineIds: string[];
  let presence: PresenceService;
  let lifecycle: ExecutionLifecycleService;
  let rows: Repository<ExecutionEntity>;
  const updates: DomainEvents['execution.updated'][] = [];

  beforeAll(async () => {
    t = await createTestApp({ database });
    p = await setupProject(t);
    machineIds = [];
    for (let i = 0; i < MACHINES; i++) machineIds.push((await enrolMachine(t, p)).machineId);
    presence = t.app.get(PresenceService);
    lifecycle = t.app.get(ExecutionLifecycleService);
    rows = t.db.getRepository(ExecutionEntity);
    t.app.get(DomainEventsService).on('execution.updated', (e) => void updates.push(e));
  }, 120_000);
  afterAll(() => t?.close());

  const profile = { labels: {}, createdAt: new Date() };
  const connection = new Map<string, string>();
  /** Every machine says hello on a new connection, all in one turn (one bulk UPDATE per 300). */
  const helloAll = async (): Promise<void> => {
    const written = await Promise.all(
      shuffled(machineIds).map((machineId) => {
        const socket = `s-${randomUUID()}`;
        connection.set(machineId, socket);
        return presence.markOnline({ machineId, projectId: p.projectId }, profile, socket, FACTS);
      }),
    );
    expect(written.every((m) => m?.status === 'online')).toBe(true);
  };
  const beatAll = async (): Promise<void> => {
    for (const id of machineIds) presence.heartbeat(id, connection.get(id)!);
    await presence.flushHeartbeats();
  };

  test(`${ROUNDS} rounds: ${MACHINES} starts and finishes in groups while every machine says hello and beats; each applies once`, async () => {
    await helloAll();
    for (let round = 0; round < ROUNDS; round++) {
      const created = await t.http.post(`/api/projects/${p.projectId}/executions`).set(bearer(p.owner.token)).send({ script: 'true', targets: { all: true } }).expect(201);
      const executions = created.body.executions as { id: string; machineId: string }[];
      expect(executions).toHaveLength(MACHINES);
      const startedAt = new Date(Date.now() - 1000).toISOString();
      const outcome = (i: number): { status: 'succeeded' | 'failed'; exitCode: number } => (i % 3 ? { status: 'succeeded', exitCode: 0 } : { status: 'failed', exitCode: 3 });

      let transitionsDone = false;
      const transitions = (async () => {
        try {
          // Every start in one turn, in no particular order, then every finish: groups of many machines each.
          const starts = await Promise.all(shuffled(executions).map((e) => lifecycle.started(e.machineId, { executionId: e.id, startedAt })));
          await Promise.all(
            shuffled(executions.map((e, i) => ({ e, i }))).map(({ e, i }) =>
              lifecycle.finished(e.machineId, { executionId: e.id, ...outcome(i), signal: null, finishedAt: new Date().toISOString(), lastSeq: i }),
            ),
          );
          return starts;
        } finally {
          transitionsDone = true;
        }
      })();
      // Presence of the same machines meanwhile, several bulk statements in flight at once, until the transitions are through.
      const presenceWrites = (async () => {
        let passes = 0;
        do {
          await Promise.all([beatAll(), helloAll(), beatAll()]);
          passes++;
        } while (!transitionsDone || passes < 3);
      })();
      const [starts] = await Promise.all([transitions, presenceWrites]);

      expect(starts.every((s) => s === true)).toBe(true);
      const stored = await rows.find({ where: { id: In(executions.map((e) => e.id)) } });
      expect(stored).toHaveLength(MACHINES);
      for (const row of stored) {
        const i = executions.findIndex((e) => e.id === row.id);
        expect({ status: row.status, exitCode: row.exitCode, lastSeq: row.lastSeq, startedAt: row.startedAt?.toISOString() }).toEqual({ ...outcome(i), lastSeq: i, startedAt });
        // One start and one finish announced, never two.
        const mine = updates.filter((u) => u.execution.id === row.id);
        expect(mine.filter((u) => u.execution.status === 'running')).toHaveLength(1);
        expect(mine.filter((u) => u.execution.status === outcome(i).status)).toHaveLength(1);
      }
    }
    // Presence as the last hellos left it: online, on the connection each machine said hello on last.
    const machines = await t.db.getRepository(MachineEntity).find({ where: { id: In(machineIds) } });
    for (const m of machines) expect({ status: m.status, connectionId: m.connectionId }).toEqual({ status: 'online', connectionId: connection.get(m.id) });
    // The lock order held: InnoDB never had to roll a group back (and so never picked one as a deadlock victim).
    expect(t.app.get(ExecutionTransitions).groupsRolledBack).toBe(0);
  }, 180_000);
});
