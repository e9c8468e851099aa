import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExecutionDispatch, ExecutionStarted, OutputChunk } from '@kapitan/shared';
import { LIMITS } from '@kapitan/shared';
import { ScriptExecution, interpreterFor, type ExecutorOptions } from './executor';
import { splitText } from './line-chunker';
import { groupAlive } from './process-group';
import { newId, pidAlive, tmpDir, waitFor } from './test-support/wait';

let workDir: string;
const leftovers: number[] = [];

beforeAll(() => {
  workDir = path.join(tmpDir(), 'run');
});
afterAll(() => {
  for (const pid of leftovers) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  fs.rmSync(path.dirname(workDir), { recursive: true, force: true });
});

interface RunResult {
  ex: ScriptExecution;
  chunks: OutputChunk[];
  started: ExecutionStarted | undefined;
}

function create(script: string, d: Partial<ExecutionDispatch> = {}, o: Partial<ExecutorOptions> = {}): RunResult {
  const r: RunResult = { ex: undefined as unknown as ScriptExecution, chunks: [], started: undefined };
  r.ex = new ScriptExecution(
    { executionId: newId(), script, args: [], env: {}, cwd: null, timeoutSeconds: 60, ...d },
    { workDir, killGraceMs: 2000, ...o },
    { onStarted: (s) => (r.started = s), onChunk: (c) => r.chunks.push(c) },
  );
  return r;
}

async function run(script: string, d: Partial<ExecutionDispatch> = {}, o: Partial<ExecutorOptions> = {}) {
  const r = create(script, d, o);
  await r.ex.start();
  const fin = await r.ex.done;
  return { ...r, fin, text: (stream?: string) => r.chunks.filter((c) => !stream || c.stream === stream).map((c) => c.data).join('') };
}

const expectContiguous = (chunks: OutputChunk[]): void => expect(chunks.map((c) => c.seq)).toEqual(chunks.map((_, i) => i));

describe('interpreterFor', () => {
  it('reads the shebang line, else /bin/sh', () => {
    expect(interpreterFor('echo hi')).toEqual(['/bin/sh']);
    expect(interpreterFor('#!/usr/bin/env bash\necho')).toEqual(['/usr/bin/env', 'bash']);
    expect(interpreterFor('#!/bin/bash -e\r\necho')).toEqual(['/bin/bash', '-e']);
    expect(interpreterFor('#! /bin/sh -eu -x')).toEqual(['/bin/sh', '-eu', '-x']);
    expect(interpreterFor('#!')).toEqual(['/bin/sh']);
    expect(interpreterFor(' #!/bin/bash')).toEqual(['/bin/sh']);
  });
});

describe('splitText', () => {
  it('cuts at the limit but never inside a surrogate pair', () => {
    expect(splitText('abcdefg', 3)).toEqual(['abc', 'def', 'g']);
    const emoji = '😀'.repeat(10); // 20 UTF-16 units
    const parts = splitText('a' + emoji, 4);
    expect(parts.join('')).toBe('a' + emoji);
    for (const p of parts) {
      expect(p.length).toBeLessThanOrEqual(4);
      const last = p.charCodeAt(p.length - 1);
      expect(last >= 0xd800 && last <= 0xdbff).toBe(false);
    }
  });
});

describe('ScriptExecution', () => {
  it('passes arguments verbatim as argv, never through a shell', async () => {
    const args = ['a;b', '$(id)', '`id`', 'line1\nline2', ' two  spaces ', '', `quote'"`, '*', '--flag', '\\x', '&& echo pwned', '|', '$HOME'];
    const { fin, text } = await run(`for a in "$@"; do printf '%s\\0' "$a"; done`, { args });
    expect(fin.status).toBe('succeeded');
    const got = text('stdout').split('\0');
    expect(got.pop()).toBe('');
    expect(got).toEqual(args);
  });

  it('numbers stdout and stderr with one sequence in the order they were written', async () => {
    const { fin, chunks } = await run(
      'echo o1; sleep 0.1; echo e1 >&2; sleep 0.1; echo o2; sleep 0.1; echo e2 >&2; sleep 0.1; printf o3',
    );
    expect(fin).toMatchObject({ status: 'succeeded', exitCode: 0, signal: null, lastSeq: 4 });
    expect(chunks).toEqual([
      { seq: 0, stream: 'stdout', data: 'o1\n' },
      { seq: 1, stream: 'stderr', data: 'e1\n' },
      { seq: 2, stream: 'stdout', data: 'o2\n' },
      { seq: 3, stream: 'stderr', data: 'e2\n' },
      { seq: 4, stream: 'stdout', data: 'o3' },
    ]);
  });

  it('keeps each stream intact and the sequence contiguous under fast interleaved writes', async () => {
    const { fin, chunks, text } = await run('i=0; while [ $i -lt 2000 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done');
    expect(fin.status).toBe('succeeded');
    expectContiguous(chunks);
    expect(fin.lastSeq).toBe(chunks.length - 1);
    const expected = (name: string) => Array.from({ length: 2000 }, (_, i) => `${name} ${i}\n`).join('');
    expect(text('stdout')).toBe(expected('out'));
    expect(text('stderr')).toBe(expected('err'));
  });

  it('interleaves the two streams only at line ends, however the pipes cut a long stdout line', async () => {
    const k = 'k'.repeat(100);
    // awk block-buffers stdout and flushes it right before each stderr line
    const { fin, chunks, text } = await run(
      `awk 'BEGIN { for (i = 1; i <= 5000; i++) { print "${k}"; if (i % 1000 == 500) { fflush(); print "err " i > "/dev/stderr" } } }'`,
    );
    expect(fin.status).toBe('succeeded');
    expectContiguous(chunks);
    const combined = chunks.map((c) => c.data).join('').split('\n');
    expect(combined.pop()).toBe('');
    expect(combined.filter((l) => l !== k && !/^err \d+$/.test(l))).toEqual([]);
    expect(text('stdout')).toBe(`${k}\n`.repeat(5000));
    expect(text('stderr')).toBe([500, 1500, 2500, 3500, 4500].map((i) => `err ${i}\n`).join(''));
  });

  it('sends a partial line after the hold, and the rest of it when the script ends', async () => {
    const r = create("printf 'Password: '; sleep 2; printf 'ok'", {}, { partialHoldMs: 30 });
    await r.ex.start();
    await waitFor(() => r.chunks.length > 0, 'the prompt, before its newline', 1500);
    expect(r.chunks[0]).toMatchObject({ stream: 'stdout', data: 'Password: ' });
    const fin = await r.ex.done;
    expect(r.chunks.map((c) => c.data)).toEqual(['Password: ', 'ok']);
    expect(fin.lastSeq).toBe(1);
  });

  it('never splits a multibyte character written in two pieces', async () => {
    // "€" is E2 82 AC; "😀" is F0 9F 98 80
    const { chunks, text } = await run(
      "printf '\\342\\202'; sleep 0.1; printf '\\254\\n'; printf '\\360\\237' >&2; sleep 0.1; printf '\\230\\200' >&2",
      {},
      { coalesceMs: 1 },
    );
    expect(text('stdout')).toBe('€\n');
    expect(text('stderr')).toBe('😀');
    for (const c of chunks) expect(c.data).not.toContain('\uFFFD');
  });

  it('cuts long output into chunks of at most chunkMax characters, surrogate pairs kept whole', async () => {
    const { chunks, text } = await run("i=0; while [ $i -lt 300 ]; do printf '\\360\\237\\230\\200x'; i=$((i+1)); done", {}, { chunkMax: 7 });
    expect(text()).toBe('😀x'.repeat(300));
    expectContiguous(chunks);
    for (const c of chunks) {
      expect(c.data.length).toBeLessThanOrEqual(7);
      expect(/[\ud800-\udbff]$/.test(c.data)).toBe(false);
    }
  });

  it('streams large output whole, in chunks within the protocol limit', async () => {
    const { fin, chunks, text } = await run("head -c 3000000 /dev/zero | tr '\\0' 'a'");
    expect(fin.status).toBe('succeeded');
    expect(text().length).toBe(3_000_000);
    expectContiguous(chunks);
    for (const c of chunks) expect(c.data.length).toBeLessThanOrEqual(LIMITS.chunkDataMax);
  });

  it('reports the exit code', async () => {
    const { fin, started } = await run('echo failing >&2; exit 3');
    expect(started?.pid).toBeGreaterThan(0);
    expect(fin).toMatchObject({ status: 'failed', exitCode: 3, signal: null, lastSeq: 0 });
    expect(fin.reason).toMatch(/code 3/);
  });

  it('reports a death by signal', async () => {
    const { fin } = await run('kill -KILL $$');
    expect(fin).toMatchObject({ status: 'failed', exitCode: null, signal: 'SIGKILL', lastSeq: -1 });
  });

  it('cancel kills the whole process group', async () => {
    const r = create('sleep 300 & echo $!; wait');
    await r.ex.start();
    const bg = Number((await waitFor(() => r.chunks.find((c) => /^\d+\n/.test(c.data)), 'pid of the background sleep')).data);
    leftovers.push(bg);
    const pid = r.started!.pid!;
    expect(pidAlive(bg)).toBe(true);
    expect(r.ex.cancel()).toBe(true);
    const fin = await r.ex.done;
    expect(fin.status).toBe('cancelled');
    expect(fin.signal).toBe('SIGTERM');
    await waitFor(() => !pidAlive(bg) && !pidAlive(pid), 'script and its child to be gone', 5000);
    expect(groupAlive(pid)).toBe(false);
    expect(r.ex.cancel()).toBe(false); // finished: ignored
  });

  it('cancel escalates to SIGKILL after the grace period for a group that ignores SIGTERM', async () => {
    const r = create("trap '' TERM; sleep 300 & echo $!; while :; do sleep 0.05; done", {}, { killGraceMs: 300 });
    await r.ex.start();
    const bg = Number((await waitFor(() => r.chunks.find((c) => /^\d+\n/.test(c.data)), 'pid of the background sleep')).data);
    leftovers.push(bg);
    const t0 = Date.now();
    r.ex.cancel();
    const fin = await r.ex.done;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    expect(fin).toMatchObject({ status: 'cancelled', signal: 'SIGKILL', exitCode: null });
    await waitFor(() => !pidAlive(bg), 'background sleep to be gone', 5000);
  });

  it('times out: the group is terminated and the status is timed_out', async () => {
    const t0 = Date.now();
    const { fin } = await run('echo start; sleep 30', { timeoutSeconds: 1 });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(fin).toMatchObject({ status: 'timed_out', signal: 'SIGTERM', lastSeq: 0 });
    expect(fin.reason).toMatch(/timed out after 1 s/);
  });

  it('uses the shebang interpreter', async () => {
    const bash = await run('#!/usr/bin/env bash\necho "bash ${BASH_VERSINFO[0]}"; echo "$0"');
    expect(bash.fin.status).toBe('succeeded');
    expect(bash.text('stdout')).toMatch(/^bash \d+\n.*\/script\n$/);
    const errexit = await run('#!/bin/bash -e\nfalse\necho not reached');
    expect(errexit.fin).toMatchObject({ status: 'failed', exitCode: 1 });
    expect(errexit.text()).toBe('');
    const sh = await run('echo "$0"; [ -z "$BASH_VERSION" ] && echo not-bash');
    expect(sh.text('stdout')).toMatch(/\/script\nnot-bash\n$/);
  });

  it('merges env over the agent environment, sets KAPITAN_EXECUTION_ID and honours cwd', async () => {
    const cwd = tmpDir();
    const r = await run('echo "$FOO|$KAPITAN_EXECUTION_ID|$PATH_SET|$(pwd)"', { env: { FOO: 'bar baz' }, cwd }, { baseEnv: { PATH: process.env.PATH, PATH_SET: 'yes' } });
    expect(r.text('stdout')).toBe(`bar baz|${r.ex.executionId}|yes|${fs.realpathSync(cwd)}\n`);
  });

  it('a missing cwd fails the execution without starting it', async () => {
    const r = await run('echo hi', { cwd: '/nonexistent/dir' });
    expect(r.started).toBeUndefined();
    expect(r.fin).toMatchObject({ status: 'failed', exitCode: null, signal: null, lastSeq: -1 });
    expect(r.fin.reason).toMatch(/working directory "\/nonexistent\/dir" does not exist/);
    const relative = await run('echo hi', { cwd: 'tmp' });
    expect(relative.fin).toMatchObject({ status: 'failed', exitCode: null });
    expect(relative.fin.reason).toMatch(/not an absolute path/);
  });

  it('an interpreter that does not exist, or a NUL byte in an argument, fails cleanly', async () => {
    const a = await run('#!/nonexistent/interpreter\necho hi');
    expect(a.fin).toMatchObject({ status: 'failed', exitCode: null });
    expect(a.fin.reason).toMatch(/could not start/);
    const b = await run('echo hi', { args: ['a\0b'] });
    expect(b.fin).toMatchObject({ status: 'failed', exitCode: null });
    expect(b.fin.reason).toMatch(/could not start/);
  });

  it('keeps the script in a private directory while it runs and removes it afterwards', async () => {
    const r = create('sleep 0.2');
    await r.ex.start();
    const dir = r.ex.directory!;
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(dir, 'script')).mode & 0o777).toBe(0o700);
    await r.ex.done;
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('does not wait forever for background processes that keep the output open', async () => {
    const { fin, chunks } = await run('sleep 30 & echo $!; exit 0', {}, { streamLingerMs: 200 });
    leftovers.push(Number(chunks[0]!.data));
    expect(fin.status).toBe('succeeded');
    expect(fin.reason).toMatch(/background processes kept the output open/);
  });

  it('pause stops reading (the script blocks), resume lets it finish with nothing lost', async () => {
    const r = create("head -c 2000000 /dev/zero | tr '\\0' 'b'; echo done >&2");
    r.ex.pause();
    await r.ex.start();
    // while paused, at most what fits in the pipes (and one read) can arrive
    await new Promise((res) => setTimeout(res, 300));
    const during = r.chunks.reduce((n, c) => n + c.data.length, 0);
    expect(during).toBeLessThan(300_000);
    expect(r.ex.running).toBe(true);
    r.ex.resume();
    await r.ex.done;
    expect(r.chunks.filter((c) => c.stream === 'stdout').map((c) => c.data).join('').length).toBe(2_000_000);
    expectContiguous(r.chunks);
  });
});

describe('secrets', () => {
  const SECRET = 'pa55-w0rd-9f3b1c7e';
  const secretRun = (script: string, o: Partial<ExecutorOptions> = {}) =>
    run(script, { secretEnv: { DB_PASSWORD: SECRET }, masks: [SECRET] }, o);

  it('injects them as environment variables and masks them in every chunk, also cut across writes and in base64', async () => {
    const script = [
      '#!/bin/bash',
      'echo "plain $DB_PASSWORD"',
      'echo "err $DB_PASSWORD" >&2',
      // the two halves come well past the chunker's partial-line hold: two pieces
      'printf "split %s" "${DB_PASSWORD:0:7}"; sleep 0.3; printf "%s done\\n" "${DB_PASSWORD:7}"',
      'printf "%s" "$DB_PASSWORD" | base64',
      'printf "user:%s" "$DB_PASSWORD" | base64',
      '[ "${#DB_PASSWORD}" = 18 ] && echo length-ok',
    ].join('\n');
    const r = await secretRun(script, { partialHoldMs: 20 });
    expect(r.fin.status).toBe('succeeded');
    expectContiguous(r.chunks);
    const all = r.text();
    for (const form of [SECRET, Buffer.from(SECRET).toString('base64').slice(0, 16), SECRET.slice(0, 7), SECRET.slice(7)]) expect(all).not.toContain(form);
    expect(r.text('stdout')).toMatch(/^plain \*\*\*\nsplit \*\*\* done\n.*\*\*\*.*\n.*\*\*\*.*\nlength-ok\n$/);
    expect(r.text('stderr')).toBe('err ***\n');
    for (const c of r.chunks) expect(c.data.length).toBeLessThanOrEqual(LIMITS.chunkDataMax);
  });

  it('a masked line is sent while the script still runs (line ends are never held)', async () => {
    const go = path.join(path.dirname(workDir), `go-${newId()}`);
    const r = create(`echo "x $DB_PASSWORD"\nwhile [ ! -e '${go}' ]; do sleep 0.02; done`, { secretEnv: { DB_PASSWORD: SECRET }, masks: [SECRET] });
    await r.ex.start();
    await waitFor(() => r.chunks.map((c) => c.data).join('') === 'x ***\n', 'the masked line before the script ends', 10_000);
    expect(r.ex.running).toBe(true);
    fs.writeFileSync(go, '');
    expect((await r.ex.done).status).toBe('succeeded');
  });

  it('a run without secrets is passed through untouched', async () => {
    const r = await run(`printf '%s\\n' '${SECRET}'`);
    expect(r.text()).toBe(`${SECRET}\n`);
  });
});
