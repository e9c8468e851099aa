import { spawn } from 'node:child_process';
import { groupAlive, stopGroup } from './process-group';
import { waitFor } from './test-support/wait';

const groups: number[] = [];
afterAll(() => {
  for (const g of groups) {
    try {
      process.kill(-g, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

/** A process group whose leader (and a child) ignore SIGTERM, and which says when the trap is set. */
async function stubbornGroup(): Promise<number> {
  const child = spawn('/bin/sh', ['-c', "trap '' TERM; sleep 300 & echo ready; while :; do sleep 0.05; done"], { detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
  groups.push(child.pid!);
  await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
  child.stdout!.destroy();
  child.unref();
  return child.pid!;
}

describe('stopGroup', () => {
  it('TERM, then KILL after the grace period for a group that ignores TERM', async () => {
    const pgid = await stubbornGroup();
    const t0 = Date.now();
    const stop = stopGroup(pgid, 200);
    await stop.settled;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    await waitFor(() => !groupAlive(pgid), 'group gone', 5000);
  });

  it('cancel: the group is left alone after the TERM', async () => {
    const pgid = await stubbornGroup();
    jest.useFakeTimers();
    try {
      const stop = stopGroup(pgid, 100);
      stop.cancel();
      jest.advanceTimersByTime(1000); // well past the grace: no KILL came
      await stop.settled;
      expect(groupAlive(pgid)).toBe(true);
    } finally {
      jest.useRealTimers();
    }
    process.kill(-pgid, 'SIGKILL');
  });

  it('killNow does not wait for the rest of the grace period', async () => {
    const pgid = await stubbornGroup();
    const stop = stopGroup(pgid, 60_000);
    stop.killNow();
    await stop.settled;
    await waitFor(() => !groupAlive(pgid), 'group gone', 5000);
  });

  it('a group that is gone is no error', async () => {
    const child = spawn('/bin/true', [], { detached: true });
    await new Promise((r) => child.once('exit', r));
    await stopGroup(child.pid!, 10).settled;
    expect(groupAlive(child.pid!)).toBe(false);
  });
});
