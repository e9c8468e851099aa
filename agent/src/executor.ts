/**
 * Runs one script as its own process group and turns what it writes into
 * numbered output chunks.
 *
 * - The script is written to a file (0700) in a per-execution scratch
 *   directory, which is also the default working directory and is removed
 *   when the execution ends. The interpreter comes from the shebang line
 *   (split on whitespace: `#!/usr/bin/env bash` → `/usr/bin/env bash FILE
 *   ARGS…`, `#!/bin/bash -e` → `/bin/bash -e FILE ARGS…`), else `/bin/sh`.
 * - Arguments are passed as argv, never through a shell string.
 * - `detached: true` gives the script its own process group; timeout and
 *   cancel stop the whole group (process-group.ts: SIGTERM, a grace period,
 *   then SIGKILL).
 * - stdout and stderr are decoded as UTF-8 each with its own decoder (a
 *   multibyte character split across reads is never split), cut at line
 *   ends and coalesced by a LineChunker (line-chunker.ts: whole lines per
 *   stream, a partial line sent after a short hold, first piece of a burst
 *   at once), and numbered from 0 with one counter for both streams.
 * - A run with secrets gets them as environment variables over its `env`,
 *   and its output passes an OutputMasker (output-masker.ts) between the
 *   chunker and the numbering: a chunk is masked before anyone sees it.
 * - `pause()` stops reading both pipes (the script then blocks on write once
 *   the pipe buffer is full: back-pressure, nothing dropped); `resume()`
 *   reads again.
 * - The execution finishes when the process has exited and both pipes have
 *   ended. If background processes keep the pipes open after the script
 *   exited, the agent reads on for `streamLingerMs` of unpaused time and then
 *   stops (those processes are left alone; the reason says so).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import type { Readable } from 'node:stream';
import { LIMITS, type ExecutionDispatch, type ExecutionFinished, type ExecutionStarted, type OutputChunk, type OutputStream } from '@kapitan/shared';
import { LineChunker, splitAtLines, type LineChunkerOptions } from './line-chunker';
import { OutputMasker } from './output-masker';
import { silentLogger, type Logger } from './logger';
import { groupAlive, stopGroup, type GroupStop } from './process-group';

export type FinalStatus = ExecutionFinished['status'];

export const DEFAULT_KILL_GRACE_MS = 10_000;
export const DEFAULT_STREAM_LINGER_MS = 5_000;

/** Output cutting (coalesceMs, coalesceChars, partialHoldMs, maxFragment, chunkMax): see LineChunker. */
export interface ExecutorOptions extends Omit<LineChunkerOptions, 'timers'> {
  /** Parent of the per-execution scratch directories (created 0700). */
  workDir: string;
  killGraceMs?: number;
  streamLingerMs?: number;
  /** Environment the script's env is merged over; default process.env. */
  baseEnv?: NodeJS.ProcessEnv;
  logger?: Logger;
}

export interface ExecutionCallbacks {
  onStarted?(started: ExecutionStarted): void;
  onChunk?(chunk: OutputChunk): void;
  onFinished?(finished: ExecutionFinished): void;
}

/** The interpreter command line for a script file: [command, ...args] before the script path. */
export function interpreterFor(script: string): string[] {
  if (!script.startsWith('#!')) return ['/bin/sh'];
  const nl = script.indexOf('\n');
  const line = (nl === -1 ? script.slice(2) : script.slice(2, nl)).trim();
  const parts = line.split(/\s+/).filter((p) => p.length > 0);
  return parts.length > 0 ? parts : ['/bin/sh'];
}

const now = (): string => new Date().toISOString();

/** One execution of one script. Create with a dispatch, then `start()`. */
export class ScriptExecution {
  readonly executionId: string;
  /** pid (and process group id) of the script once spawned. */
  pid: number | null = null;
  startedAt: string | null = null;
  /** Sequence number of the last chunk emitted; -1 before the first. */
  lastSeq = -1;
  /** Resolves with the final event once the execution is over. */
  readonly done: Promise<ExecutionFinished>;

  private resolveDone!: (f: ExecutionFinished) => void;
  private readonly opts: ResolvedOptions;
  private readonly logger: Logger;
  private child: ChildProcess | null = null;
  private dir: string | null = null;
  private seq = 0;
  private readonly chunker: LineChunker;
  /** Null for runs without secrets: their output is not touched. */
  private readonly masker: OutputMasker | null;
  private readonly chunkMax: number;
  private readonly decoders: Record<OutputStream, StringDecoder> = {
    stdout: new StringDecoder('utf8'),
    stderr: new StringDecoder('utf8'),
  };
  private readonly open: Record<OutputStream, boolean> = { stdout: false, stderr: false };
  private exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private spawnError: string | null = null;
  private terminateReason: 'cancelled' | 'timed_out' | null = null;
  private signalled = false;
  private timeoutTimer: NodeJS.Timeout | null = null;
  private groupStop: GroupStop | null = null;
  private lingerTimer: NodeJS.Timeout | null = null;
  private lingerCut = false;
  private paused = false;
  private finished: ExecutionFinished | null = null;
  private startCalled = false;

  constructor(
    readonly dispatch: ExecutionDispatch,
    options: ExecutorOptions,
    private readonly callbacks: ExecutionCallbacks = {},
  ) {
    this.executionId = dispatch.executionId;
    this.opts = {
      workDir: options.workDir,
      killGraceMs: options.killGraceMs ?? DEFAULT_KILL_GRACE_MS,
      streamLingerMs: options.streamLingerMs ?? DEFAULT_STREAM_LINGER_MS,
      baseEnv: options.baseEnv,
    };
    this.logger = (options.logger ?? silentLogger).child({ executionId: this.executionId });
    const masks = [...(dispatch.masks ?? []), ...Object.values(dispatch.secretEnv ?? {})];
    this.masker = masks.length ? new OutputMasker(masks) : null;
    // As the chunker bounds its pieces: what the masker releases may add a held partial line to one.
    this.chunkMax = Math.max(2, Math.min(options.chunkMax ?? LIMITS.chunkDataMax, LIMITS.chunkDataMax));
    this.chunker = new LineChunker((stream, data) => this.onPiece(stream, data), options);
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
  }

  get running(): boolean {
    return this.finished === null;
  }
  get isPaused(): boolean {
    return this.paused;
  }
  /** The scratch directory of this execution (null before start / after cleanup). */
  get directory(): string | null {
    return this.dir;
  }

  /** Prepare and spawn. Never throws: a failure to start finishes the execution as `failed`. */
  async start(): Promise<void> {
    if (this.startCalled) return;
    this.startCalled = true;
    const d = this.dispatch;
    try {
      if (d.cwd !== null) {
        if (!path.isAbsolute(d.cwd)) return this.finishEarly(`working directory ${JSON.stringify(d.cwd)} is not an absolute path`);
        let ok = false;
        try {
          ok = (await fs.promises.stat(d.cwd)).isDirectory();
        } catch {
          ok = false;
        }
        if (!ok) return this.finishEarly(`working directory ${JSON.stringify(d.cwd)} does not exist or is not a directory`);
      }
      if (this.terminateReason === 'cancelled') return this.finishEarly('cancelled before the script started', 'cancelled');
      fs.mkdirSync(this.opts.workDir, { recursive: true, mode: 0o700 });
      const dir = path.join(this.opts.workDir, safeName(this.executionId));
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir, { mode: 0o700 });
      this.dir = dir;
      const file = path.join(dir, 'script');
      fs.writeFileSync(file, d.script, { mode: 0o700 });
      fs.chmodSync(file, 0o700);
      const [command, ...interpArgs] = interpreterFor(d.script);
      const env: NodeJS.ProcessEnv = { ...(this.opts.baseEnv ?? process.env), ...d.env, ...d.secretEnv, KAPITAN_EXECUTION_ID: this.executionId };
      let child: ChildProcess;
      try {
        child = spawn(command!, [...interpArgs, file, ...d.args], {
          cwd: d.cwd ?? dir,
          env,
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
          windowsHide: true,
        });
      } catch (err) {
        // e.g. a NUL byte in an argument or an environment value
        return this.finishEarly(`could not start the script: ${(err as Error).message}`);
      }
      this.child = child;
      if (child.pid === undefined) {
        // spawn failed asynchronously (ENOENT interpreter…): 'error' follows
        await new Promise<void>((resolve) => {
          child.once('error', (err) => {
            this.spawnError = `could not start ${command}: ${err.message}`;
            resolve();
          });
          child.once('close', () => resolve());
        });
        child.stdout?.destroy();
        child.stderr?.destroy();
        return this.finishEarly(this.spawnError ?? `could not start ${command}`);
      }
      this.pid = child.pid;
      this.startedAt = now();
      this.wire(child);
      // setTimeout overflows past 2^31-1 ms (~24.8 days); the dispatch schema sets no upper bound
      this.timeoutTimer = setTimeout(() => this.terminate('timed_out'), Math.min(d.timeoutSeconds * 1000, 2 ** 31 - 1));
      this.logger.debug('script started', { pid: this.pid, command, args: interpArgs });
      this.callbacks.onStarted?.({ executionId: this.executionId, startedAt: this.startedAt, pid: this.pid });
      if (this.paused) this.applyPause();
      if (this.terminateReason) this.signalGroupNow();
    } catch (err) {
      if (this.finished === null && this.child === null) this.finishEarly(`could not prepare the script: ${(err as Error).message}`);
    }
  }

  private wire(child: ChildProcess): void {
    const streams: [OutputStream, Readable][] = [
      ['stdout', child.stdout!],
      ['stderr', child.stderr!],
    ];
    for (const [name, stream] of streams) {
      this.open[name] = true;
      stream.on('data', (buf: Buffer) => this.onData(name, buf));
      const ended = (): void => this.onStreamEnd(name);
      stream.once('end', ended);
      stream.once('close', ended);
      stream.on('error', (err) => {
        this.logger.warn('error reading script output', { stream: name, err });
        ended();
      });
    }
    child.on('error', (err) => {
      // e.g. a failed kill; the process itself is still reported by 'exit'
      this.logger.warn('child process error', { err });
    });
    child.once('exit', (code, signal) => {
      this.exit = { code, signal };
      this.logger.debug('script exited', { code, signal });
      if (this.timeoutTimer) clearTimeout(this.timeoutTimer);
      this.timeoutTimer = null;
      this.maybeFinish();
      this.armLinger();
    });
  }

  private onData(stream: OutputStream, buf: Buffer): void {
    const text = this.decoders[stream].write(buf);
    if (text.length > 0) this.chunker.write(stream, text);
  }

  private onPiece(stream: OutputStream, data: string): void {
    if (!this.masker) return this.emitChunk(stream, data);
    this.emitMasked(stream, this.masker.push(stream, data));
  }

  private emitMasked(stream: OutputStream, masked: string): void {
    if (!masked) return;
    for (const piece of splitAtLines(masked, this.chunkMax)) this.emitChunk(stream, piece);
  }

  private emitChunk(stream: OutputStream, data: string): void {
    const chunk: OutputChunk = { seq: this.seq++, stream, data };
    this.lastSeq = chunk.seq;
    this.callbacks.onChunk?.(chunk);
  }

  private onStreamEnd(stream: OutputStream): void {
    if (!this.open[stream]) return;
    this.open[stream] = false;
    const rest = this.decoders[stream].end();
    if (rest.length > 0) this.chunker.write(stream, rest);
    this.chunker.end(stream);
    this.maybeFinish();
  }

  /** After the script exited, stop waiting for pipes held by its leftovers once the linger time passed. */
  private armLinger(): void {
    if (this.finished || !this.exit || this.paused || this.lingerTimer) return;
    if (!this.open.stdout && !this.open.stderr) return;
    this.lingerTimer = setTimeout(() => {
      this.lingerTimer = null;
      if (this.finished || this.paused) return;
      this.lingerCut = true;
      this.logger.warn('script exited but background processes keep its output open; no longer reading it');
      for (const s of [this.child?.stdout, this.child?.stderr]) s?.destroy();
    }, this.opts.streamLingerMs);
  }

  private maybeFinish(): void {
    if (this.finished || !this.exit || this.open.stdout || this.open.stderr) return;
    this.chunker.flush();
    if (this.masker) for (const stream of ['stdout', 'stderr'] as const) this.emitMasked(stream, this.masker.end(stream));
    const { code, signal } = this.exit;
    let status: FinalStatus;
    let reason: string | null = null;
    if (this.terminateReason === 'timed_out') {
      status = 'timed_out';
      reason = `timed out after ${this.dispatch.timeoutSeconds} s`;
    } else if (this.terminateReason === 'cancelled') {
      status = 'cancelled';
      reason = 'cancelled';
    } else if (code === 0) {
      status = 'succeeded';
    } else {
      status = 'failed';
      reason = signal ? `killed by ${signal}` : `exited with code ${code}`;
    }
    if (this.lingerCut) reason = `${reason ? reason + '; ' : ''}background processes kept the output open after the script exited; stopped reading it`;
    this.complete({
      executionId: this.executionId,
      status,
      exitCode: code,
      signal: signal ?? null,
      finishedAt: now(),
      lastSeq: this.lastSeq,
      reason,
    });
  }

  private finishEarly(reason: string, status: 'failed' | 'cancelled' = 'failed'): void {
    if (status === 'failed') this.logger.warn('script could not be started', { reason });
    this.complete({
      executionId: this.executionId,
      status,
      exitCode: null,
      signal: null,
      finishedAt: now(),
      lastSeq: this.lastSeq,
      reason: reason.slice(0, 1000),
    });
  }

  private complete(finished: ExecutionFinished): void {
    if (this.finished) return;
    this.finished = finished;
    for (const t of [this.timeoutTimer, this.lingerTimer]) if (t) clearTimeout(t);
    this.timeoutTimer = this.lingerTimer = null;
    this.chunker.dispose();
    // After TERM, keep the KILL pending only while something of the group is left.
    if (this.groupStop && (this.pid === null || !groupAlive(this.pid))) this.groupStop.cancel();
    if (this.dir) {
      try {
        fs.rmSync(this.dir, { recursive: true, force: true });
      } catch (err) {
        this.logger.warn('could not remove the execution directory', { dir: this.dir, err });
      }
      this.dir = null;
    }
    this.logger.debug('execution finished', { status: finished.status, exitCode: finished.exitCode, signal: finished.signal });
    this.callbacks.onFinished?.(finished);
    this.resolveDone(finished);
  }

  /** Cancel: TERM the process group, KILL it after the grace period. No-op once finished. */
  cancel(): boolean {
    return this.terminate('cancelled');
  }

  private terminate(reason: 'cancelled' | 'timed_out'): boolean {
    if (this.finished) return false;
    if (this.signalled || this.terminateReason) return true;
    // once the script itself exited, its status stands; only leftovers of its group get killed
    if (!this.exit) this.terminateReason = reason;
    this.logger.info(reason === 'timed_out' ? 'timeout: terminating the process group' : 'cancel: terminating the process group', { pgid: this.pid });
    if (this.pid !== null) this.signalGroupNow(); // else start() signals right after spawning
    return true;
  }

  private signalGroupNow(): void {
    if (this.signalled || this.pid === null) return;
    this.signalled = true;
    this.groupStop = stopGroup(this.pid, this.opts.killGraceMs, this.logger);
  }

  /** Stop reading the script's output (back-pressure). */
  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.applyPause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.child?.stdout?.resume();
    this.child?.stderr?.resume();
    this.armLinger();
  }

  private applyPause(): void {
    this.child?.stdout?.pause();
    this.child?.stderr?.pause();
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    this.lingerTimer = null;
  }
}

type ResolvedOptions = {
  workDir: string;
  killGraceMs: number;
  streamLingerMs: number;
  baseEnv: NodeJS.ProcessEnv | undefined;
};

function safeName(id: string): string {
  return id.replace(/[^A-Za-z0-9-]/g, '_').slice(0, 100) || 'execution';
}
