import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { artifactDir, onTestFailure } from './failures';
import { registerCleanup } from './cleanup';
import { TimeoutError } from './wait';

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnOptions {
  env: NodeJS.ProcessEnv;
  cwd?: string;
  /** Most characters of output kept in memory (oldest dropped first); default 4 MB. */
  maxLogChars?: number;
}

const verbose = (): boolean => /^(1|true)$/i.test(process.env.KAPITAN_E2E_VERBOSE ?? '');

/** Every process spawned by this test file: its logs are saved when a test fails. */
const spawned = new Set<ManagedProcess>();

/**
 * A real child process with its output captured (stdout and stderr
 * interleaved, line by line), its exit observable as a promise, and a stop
 * that escalates: the signal, a grace period, then SIGKILL.
 */
export class ManagedProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<ProcessExit>;
  private exit: ProcessExit | undefined;
  private output: string[] = [];
  private outputChars = 0;
  private dropped = 0;
  private readonly maxLogChars: number;
  private lineWaiters = new Set<(line: string) => void>();
  private readonly unregister: () => void;

  constructor(
    readonly name: string,
    command: string,
    args: readonly string[],
    options: SpawnOptions,
  ) {
    this.maxLogChars = options.maxLogChars ?? 4 * 1024 * 1024;
    this.child = spawn(command, args, {
      env: options.env,
      cwd: options.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const spawnError = new Promise<ProcessExit>((resolve) =>
      this.child.once('error', (error) => {
        this.record('harness', `spawn failed: ${error.message}`);
        resolve({ code: null, signal: null });
      }),
    );
    const closed = new Promise<ProcessExit>((resolve) =>
      this.child.once('close', (code, signal) => resolve({ code, signal })),
    );
    this.exited = Promise.race([closed, spawnError]).then((exit) => {
      this.exit = exit;
      this.record('harness', `exited (code ${exit.code}, signal ${exit.signal})`);
      return exit;
    });
    this.pipe(this.child.stdout!, 'out');
    this.pipe(this.child.stderr!, 'err');
    spawned.add(this);
    this.unregister = registerCleanup(`process ${name}`, async () => {
      await this.stop('SIGTERM', 5_000);
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Undefined while running. */
  get exitInfo(): ProcessExit | undefined {
    return this.exit;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  /** Everything the process wrote so far (bounded; the oldest lines go first). */
  logs(): string {
    const head = this.dropped > 0 ? `[… ${this.dropped} older lines dropped]\n` : '';
    return head + this.output.join('\n');
  }

  /** The last `lines` lines of output, for error messages. */
  tail(lines = 40): string {
    return this.output.slice(-lines).join('\n');
  }

  /**
   * Resolves with the first output line from now on matching `pattern`
   * (lines already written are searched first). Rejects at the deadline or
   * when the process exits first.
   */
  async waitForLine(pattern: RegExp, timeoutMs = 10_000): Promise<string> {
    const seen = this.output.find((line) => pattern.test(line));
    if (seen !== undefined) return seen;
    let waiter: ((line: string) => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await new Promise<string>((resolve, reject) => {
        waiter = (line) => pattern.test(line) && resolve(line);
        this.lineWaiters.add(waiter);
        timer = setTimeout(
          () => reject(new TimeoutError(`${this.name}: no output line matching ${pattern} within ${timeoutMs} ms\n${this.tail()}`)),
          timeoutMs,
        );
        void this.exited.then((exit) =>
          reject(new Error(`${this.name} exited (code ${exit.code}, signal ${exit.signal}) before writing a line matching ${pattern}\n${this.tail()}`)),
        );
      });
    } finally {
      clearTimeout(timer);
      if (waiter) this.lineWaiters.delete(waiter);
    }
  }

  /** Sends `signal`; after `graceMs` without exit, SIGKILL. Resolves with the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<ProcessExit> {
    if (this.exit) return this.exit;
    this.record('harness', `sending ${signal}`);
    this.child.kill(signal);
    if (signal === 'SIGKILL') return this.exited;
    let timer: NodeJS.Timeout | undefined;
    const escalate = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    const first = await Promise.race([this.exited, escalate.then(() => undefined)]);
    clearTimeout(timer);
    if (first) return first;
    this.record('harness', `no exit ${graceMs} ms after ${signal}: SIGKILL`);
    this.child.kill('SIGKILL');
    return this.exited;
  }

  /** SIGKILL, no grace: a crash. */
  kill(): Promise<ProcessExit> {
    return this.stop('SIGKILL');
  }

  /** Stops it (if running) and forgets it: nothing left to clean up. */
  async dispose(): Promise<void> {
    await this.stop('SIGTERM', 5_000);
    this.unregister();
    spawned.delete(this);
  }

  private pipe(stream: NodeJS.ReadableStream, tag: 'out' | 'err'): void {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (data: string) => {
      const lines = (partial + data).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) this.record(tag, line);
    });
    stream.on('end', () => {
      if (partial) this.record(tag, partial);
      partial = '';
    });
  }

  private record(tag: 'out' | 'err' | 'harness', text: string): void {
    const line = tag === 'harness' ? `[harness] ${text}` : tag === 'err' ? `[stderr] ${text}` : text;
    this.output.push(line);
    this.outputChars += line.length + 1;
    while (this.outputChars > this.maxLogChars && this.output.length > 1) {
      this.outputChars -= this.output.shift()!.length + 1;
      this.dropped++;
    }
    if (verbose()) process.stderr.write(`[${this.name}] ${line}\n`);
    if (tag !== 'harness') for (const waiter of [...this.lineWaiters]) waiter(text);
  }
}

export function spawnProcess(name: string, command: string, args: readonly string[], options: SpawnOptions): ManagedProcess {
  return new ManagedProcess(name, command, args, options);
}

/**
 * The environment of a Kapitan child process: the test runner's own, minus
 * anything that configures Kapitan (a developer's DATABASE_URL must never
 * reach a test server), plus `overrides` (an undefined value removes a key).
 */
export function childEnv(overrides: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  const inheritedOut = /^(KAPITAN_|DATABASE_URL$|REDIS_URL$|JWT_SECRET$|PORT$|LOG_LEVEL$|NODE_OPTIONS$)/;
  for (const [key, value] of Object.entries(process.env)) {
    if (!inheritedOut.test(key) || key.startsWith('KAPITAN_TEST_')) env[key] = value;
  }
  for (const [key, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return env;
}

// Save the output of every process of this file when a test fails, and show the tail.
onTestFailure(async ({ testName }) => {
  if (spawned.size === 0) return;
  const dir = await artifactDir(testName);
  const notes: string[] = [];
  for (const p of spawned) {
    const file = path.join(dir, `${p.name.replace(/[^\w.-]+/g, '_')}.log`);
    await fs.writeFile(file, p.logs());
    notes.push(`--- ${p.name} (${p.running ? 'running' : 'exited'}): ${file}\n${p.tail(15)}`);
  }
  process.stderr.write(`[e2e] "${testName}" failed; process logs:\n${notes.join('\n')}\n`);
});
