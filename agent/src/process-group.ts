/**
 * Process groups: every script runs as the leader of its own group, so a
 * stop reaches everything it started. One stop sequence for the executor
 * (timeout, cancel), for orphans found after a restart and for the agent's
 * shutdown: SIGTERM to the group, then SIGKILL after a grace period if any
 * live member is left.
 */
import * as fs from 'node:fs';
import { silentLogger, type Logger } from './logger';

/** /proc start time of a process (field 22 of /proc/<pid>/stat), or null. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null; // fields after "(comm)": state is field 3, starttime field 22
  } catch {
    return null;
  }
}

let bootIdCache: string | null | undefined;
export function bootId(): string | null {
  if (bootIdCache === undefined) {
    try {
      bootIdCache = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
    } catch {
      bootIdCache = null;
    }
  }
  return bootIdCache;
}

/** Send a signal to a process group; false if no such group. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  if (!Number.isInteger(pgid) || pgid <= 1) return false;
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Does the process group still have a live (non-zombie) member? Zombies are
 * ignored: an orphan reparented to an init that does not reap stays one forever.
 */
export function groupAlive(pgid: number): boolean {
  if (!signalGroup(pgid, 0)) return false;
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return true; // no /proc: trust kill(0)
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // rest[0] = state, rest[2] = process group
      if (rest[2] === String(pgid) && rest[0] !== 'Z' && rest[0] !== 'X') return true;
    } catch {
      // gone meanwhile
    }
  }
  return false;
}

/** A stop in progress: SIGTERM was sent; SIGKILL follows after the grace period unless cancelled or forced. */
export interface GroupStop {
  readonly pgid: number;
  /** Resolves once the grace period is over (and the KILL, if needed, sent), or on `cancel`/`killNow`. */
  readonly settled: Promise<void>;
  /** The group is known to be gone (or must be left alone): no KILL. */
  cancel(): void;
  /** Do not wait for the rest of the grace period: KILL now if anything is left. */
  killNow(): void;
}

/** TERM the group now, KILL it after `graceMs` if a live member is left. */
export function stopGroup(pgid: number, graceMs: number, logger: Logger = silentLogger): GroupStop {
  let resolve!: () => void;
  const settled = new Promise<void>((r) => (resolve = r));
  let timer: NodeJS.Timeout | null = null;
  const end = (): void => {
    if (timer) clearTimeout(timer);
    timer = null;
    resolve();
  };
  const kill = (): void => {
    if (groupAlive(pgid)) {
      logger.warn('process group still alive after the grace period: killing it', { pgid });
      signalGroup(pgid, 'SIGKILL');
    }
    end();
  };
  signalGroup(pgid, 'SIGTERM');
  timer = setTimeout(kill, graceMs);
  return {
    pgid,
    settled,
    cancel: end,
    killNow: () => {
      if (timer) kill();
    },
  };
}
