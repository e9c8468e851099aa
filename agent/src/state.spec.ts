import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ExecutionFinished } from '@kapitan/shared';
import { ACTIVE_FILE, FileJournal, KNOWN_FILE, MemoryJournal, type ActiveExecutionRecord } from './journal';
import {
  AlreadyRunningError,
  PID_FILE,
  acquirePidFile,
  defaultStateDir,
  readPidFile,
  readState,
  statePath,
  writeFileAtomic,
  writeState,
  type AgentState,
} from './state';
import { newId, tmpDir } from './test-support/wait';

let dir: string;
beforeEach(() => {
  dir = tmpDir();
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const state = (): AgentState => ({
  version: 1,
  server: 'https://kapitan.example.com',
  machineId: newId(),
  projectId: newId(),
  credential: 'mc_secret',
  enrolledAt: new Date().toISOString(),
  labels: { env: 'prod' },
});

describe('state file', () => {
  it('is written 0600 in a 0700 directory, atomically, and read back', () => {
    const stateDir = path.join(dir, 'nested', 'state');
    const s = state();
    writeState(stateDir, s);
    expect(fs.statSync(stateDir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(statePath(stateDir)).mode & 0o777).toBe(0o600);
    expect(readState(stateDir)).toEqual(s);
    writeState(stateDir, { ...s, labels: {} });
    expect(readState(stateDir)!.labels).toEqual({});
    expect(fs.readdirSync(stateDir)).toEqual(['state.json']); // no temporary file left behind
  });

  it('keeps 0600 whatever the umask', () => {
    const old = process.umask(0);
    try {
      writeFileAtomic(path.join(dir, 'f'), 'x', 0o600);
    } finally {
      process.umask(old);
    }
    expect(fs.statSync(path.join(dir, 'f')).mode & 0o777).toBe(0o600);
  });

  it('reads null when not enrolled and fails clearly on a corrupt file', () => {
    expect(readState(dir)).toBeNull();
    fs.writeFileSync(statePath(dir), '{not json');
    expect(() => readState(dir)).toThrow(/not valid JSON/);
    fs.writeFileSync(statePath(dir), JSON.stringify({ version: 1, server: 'x' }));
    expect(() => readState(dir)).toThrow(/invalid/);
  });

  it('defaults the state directory from the environment', () => {
    expect(defaultStateDir({ KAPITAN_AGENT_STATE_DIR: '/srv/agent' })).toBe('/srv/agent');
    const expected = process.getuid?.() === 0 ? '/var/lib/kapitan-agent' : path.join(os.homedir(), '.kapitan-agent');
    expect(defaultStateDir({})).toBe(expected);
  });
});

describe('pid file', () => {
  it('allows one run process per state directory and replaces a stale pid file', async () => {
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      fs.writeFileSync(path.join(dir, PID_FILE), `${other.pid}\n`);
      expect(() => acquirePidFile(dir)).toThrow(AlreadyRunningError);
      expect(readPidFile(dir)).toEqual({ pid: other.pid, alive: true });
    } finally {
      other.kill('SIGKILL');
      await new Promise((r) => other.once('exit', r));
    }
    expect(readPidFile(dir)!.alive).toBe(false);
    const lock = acquirePidFile(dir);
    expect(readPidFile(dir)).toEqual({ pid: process.pid, alive: true });
    lock.release();
    expect(readPidFile(dir)).toBeNull();
  });
});

const record = (executionId: string, over: Partial<ActiveExecutionRecord> = {}): ActiveExecutionRecord => ({
  executionId,
  pid: 4242,
  procStart: '123',
  bootId: 'boot',
  startedAt: new Date().toISOString(),
  lastSeq: -1,
  dir: null,
  finished: null,
  ...over,
});

describe('FileJournal', () => {
  it('remembers known ids across restarts, bounded to the most recent ones', () => {
    const ids = Array.from({ length: 12 }, () => newId());
    const j = new FileJournal(dir, undefined, 5);
    for (const id of ids) j.addKnown(id);
    j.addKnown(ids[11]!); // already known: not appended again
    expect(ids.slice(0, 7).some((id) => j.isKnown(id))).toBe(false);
    expect(ids.slice(7).every((id) => j.isKnown(id))).toBe(true);
    j.close();
    const j2 = new FileJournal(dir, undefined, 5);
    expect(ids.slice(7).every((id) => j2.isKnown(id))).toBe(true);
    expect(j2.isKnown(ids[6]!)).toBe(false);
    // the file is compacted, never growing without bound
    expect(fs.readFileSync(path.join(dir, KNOWN_FILE), 'utf8').split('\n').filter(Boolean).length).toBeLessThanOrEqual(10);
    expect(fs.statSync(path.join(dir, KNOWN_FILE)).mode & 0o777).toBe(0o600);
  });

  it('ignores a torn last line of the known ids file', () => {
    const id = newId();
    fs.writeFileSync(path.join(dir, KNOWN_FILE), `${id}\nabc$%^`);
    const j = new FileJournal(dir);
    expect(j.isKnown(id)).toBe(true);
    expect(j.isKnown('abc$%^')).toBe(false);
  });

  it('journals active executions durably, and lastSeq lazily', () => {
    const id = newId();
    const j = new FileJournal(dir);
    j.putActive(record(id));
    const read = () => JSON.parse(fs.readFileSync(path.join(dir, ACTIVE_FILE), 'utf8')).executions;
    expect(read()).toEqual([record(id)].map((r) => ({ ...r, startedAt: expect.any(String) })));
    j.updateLastSeq(id, 41);
    expect(read()[0].lastSeq).toBe(-1); // not yet written
    j.flush();
    expect(read()[0].lastSeq).toBe(41);
    const fin: ExecutionFinished = { executionId: id, status: 'failed', exitCode: 2, signal: null, finishedAt: new Date().toISOString(), lastSeq: 50, reason: null };
    j.setFinished(id, fin);
    const j2 = new FileJournal(dir);
    expect(j2.getActive(id)).toMatchObject({ lastSeq: 50, finished: fin });
    j2.removeActive(id);
    expect(read()).toEqual([]);
    expect(fs.statSync(path.join(dir, ACTIVE_FILE)).mode & 0o777).toBe(0o600);
  });

  it('moves an unreadable active journal aside instead of failing', () => {
    fs.writeFileSync(path.join(dir, ACTIVE_FILE), '{"version":1,"executions":[{"bad":true}]}');
    const j = new FileJournal(dir);
    expect(j.listActive()).toEqual([]);
    expect(fs.readdirSync(dir).some((f) => f.startsWith(`${ACTIVE_FILE}.corrupt-`))).toBe(true);
  });

  it('writes nothing after close (another process may own the directory)', () => {
    const j = new FileJournal(dir);
    j.close();
    j.putActive(record(newId()));
    j.addKnown(newId());
    expect(fs.existsSync(path.join(dir, ACTIVE_FILE))).toBe(false);
    expect(fs.existsSync(path.join(dir, KNOWN_FILE))).toBe(false);
  });
});

describe('MemoryJournal', () => {
  it('behaves like the file journal without files', () => {
    const j = new MemoryJournal(2);
    const [a, b, c] = [newId(), newId(), newId()];
    j.addKnown(a);
    j.addKnown(b);
    j.addKnown(c);
    expect([j.isKnown(a), j.isKnown(b), j.isKnown(c)]).toEqual([false, true, true]);
    j.putActive(record(a));
    j.updateLastSeq(a, 3);
    expect(j.getActive(a)!.lastSeq).toBe(3);
    j.removeActive(a);
    expect(j.listActive()).toEqual([]);
  });
});
