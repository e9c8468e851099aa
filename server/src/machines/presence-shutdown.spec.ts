/**
 * A node stopping while many of its agents' offline writes still wait for a
 * database connection (a site's agents all left, then SIGTERM): the
 * shutdown marks every machine it holds offline in one statement and closes
 * the pool, and the writes that were waiting end quietly instead of failing
 * one by one with "Pool is closed".
 */
import { randomUUID } from 'node:crypto';
import { createTestApp, describeBothDatabases } from '../testing/test-app';
import { enrolMachine, FACTS, setupProject } from '../testing/sockets';
import { PresenceService } from './presence.service';

const MACHINES = 150;

describeBothDatabases('presence at shutdown', (database) => {
  test(`${MACHINES} offline writes in flight when the node stops: none fails`, async () => {
    const t = await createTestApp({ database });
    let closed = false;
    try {
      const p = await setupProject(t);
      const presence = t.app.get(PresenceService);
      const held: [string, string][] = [];
      for (let i = 0; i < MACHINES; i++) {
        const { machineId } = await enrolMachine(t, p);
        const socket = `s-${randomUUID()}`;
        await presence.markOnline({ machineId, projectId: p.projectId }, null, socket, FACTS);
        held.push([machineId, socket]);
      }
      const offline = held.map(([machineId, socket]) => presence.markOffline(machineId, socket));
      closed = true;
      await t.close();
      const failed = (await Promise.allSettled(offline)).filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
      expect(failed).toEqual([]);
    } finally {
      if (!closed) await t.close();
    }
  }, 120_000);
});
