/**
 * The agent's state directory: `state.json` (server, machine id, credential,
 * how the server is trusted and reached; mode 0600), the pid file of the `run` process, the execution journals
 * (journal.ts) and per-execution scratch directories. The directory is 0700.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';
import { IdSchema, LabelsSchema, SpkiPinSchema } from '@kapitan/shared';

export const STATE_FILE = 'state.json';
export const PID_FILE = 'agent.pid';
export const RUN_DIR = 'run';

export const AgentStateSchema = z.object({
  version: z.literal(1),
  /** Base URL of the Kapitan server, without a trailing slash. */
  server: z.url(),
  machineId: IdSchema,
  projectId: IdSchema,
  credential: z.string().min(1),
  enrolledAt: z.string(),
  labels: LabelsSchema.default({}),
  /**
   * Set when the server revoked this machine (or deleted it or its project):
   * `run` then refuses to start, so a supervisor restarting it does not
   * dial a server that will never let it in. Enrolling again clears it.
   */
  revoked: z.object({ at: z.string(), reason: z.string() }).optional(),
  /**
   * `enrol --pin`: SPKI SHA-256 pins; every connection to the server
   * requires some certificate of its chain to have one of these keys (trust.ts).
   */
  pins: z.array(SpkiPinSchema).min(1).optional(),
  /** `enrol --ca-file`: the PEM certificates the server's chain is verified with, instead of the system's. */
  caPem: z.string().includes('-----BEGIN CERTIFICATE-----').optional(),
  /** `enrol --proxy`: the HTTP CONNECT proxy to the server; without it HTTPS_PROXY / NO_PROXY decide. */
  proxy: z.url({ protocol: /^https?$/ }).optional(),
});
export type AgentState = z.infer<typeof AgentStateSchema>;

/** `$KAPITAN_AGENT_STATE_DIR`, else /var/lib/kapitan-agent for root, else ~/.kapitan-agent. */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.KAPITAN_AGENT_STATE_DIR;
  if (fromEnv) return path.resolve(fromEnv);
  const uid = typeof process.getuid === 'function' ? process.getuid() : -1;
  if (uid === 0) return '/var/lib/kapitan-agent';
  return path.join(os.homedir(), '.kapitan-agent');
}

/** Create the directory (and parents) if needed, and make it 0700. */
export function ensurePrivateDir(dir: string): void {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  try {
    fs.chmodSync(dir, 0o700);
  } catch {
    // not ours to change: keep going, the files inside are 0600 anyway
  }
}

/**
 * Write a file so that a reader sees the old or the new content, never a
 * torn one: write a temporary file beside it (mode `mode`), fsync, rename.
 */
export function writeFileAtomic(file: string, data: string | Buffer, mode = 0o600): void {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx', mode);
    fs.fchmodSync(fd, mode); // independent of the umask
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (err) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  try {
    const dfd = fs.openSync(path.dirname(file), 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } catch {
    // directory fsync is best effort
  }
}

export function statePath(stateDir: string): string {
  return path.join(stateDir, STATE_FILE);
}

/** The saved state, or null when the agent was never enrolled here. Throws on a corrupt file. */
export function readState(stateDir: string): AgentState | null {
  let text: string;
  try {
    text = fs.readFileSync(statePath(stateDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${statePath(stateDir)} is not valid JSON; enrol again with --force`);
  }
  const parsed = AgentStateSchema.safeParse(json);
  if (!parsed.success) throw new Error(`${statePath(stateDir)} is invalid (${parsed.error.issues[0]?.message}); enrol again with --force`);
  return parsed.data;
}

export function writeState(stateDir: string, state: AgentState): void {
  ensurePrivateDir(stateDir);
  writeFileAtomic(statePath(stateDir), JSON.stringify(state, null, 2) + '\n', 0o600);
}

/** Is a process with this pid alive (EPERM counts as alive)? */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function readPidFile(stateDir: string): { pid: number; alive: boolean } | null {
  let text: string;
  try {
    text = fs.readFileSync(path.join(stateDir, PID_FILE), 'utf8');
  } catch {
    return null;
  }
  const pid = Number.parseInt(text.trim(), 10);
  if (!Number.isInteger(pid) || pid <= 0) return null;
  return { pid, alive: isProcessAlive(pid) };
}

export class AlreadyRunningError extends Error {
  constructor(
    readonly pid: number,
    stateDir: string,
  ) {
    super(`another kapitan-agent run process (pid ${pid}) is using ${stateDir}`);
  }
}

/** State directories whose pid file this process holds. */
const heldPidFiles = new Set<string>();

/**
 * Take the pid file of `run`: one run process per state directory (two would
 * both execute every dispatch). A stale pid file of a dead process is
 * replaced, as is one naming this very pid that this process does not hold
 * (a container restarted with the same pid).
 */
export function acquirePidFile(stateDir: string): { release(): void } {
  ensurePrivateDir(stateDir);
  const key = path.resolve(stateDir);
  if (heldPidFiles.has(key)) throw new AlreadyRunningError(process.pid, stateDir);
  const file = path.join(stateDir, PID_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx', 0o600);
      fs.writeSync(fd, `${process.pid}\n`);
      fs.closeSync(fd);
      let released = false;
      heldPidFiles.add(key);
      return {
        release() {
          if (released) return;
          released = true;
          heldPidFiles.delete(key);
          const cur = readPidFile(stateDir);
          if (cur?.pid === process.pid) fs.rmSync(file, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const cur = readPidFile(stateDir);
      if (cur && cur.alive && cur.pid !== process.pid) throw new AlreadyRunningError(cur.pid, stateDir);
      fs.rmSync(file, { force: true }); // stale
    }
  }
  throw new Error(`could not take ${file}`);
}
