/**
 * A runner that spawns nothing: it "prints" synthetic lines on a timer. For
 * simulated agents (benchmarks with thousands of agents in one process): plug
 * it into ExecutionManager / Agent with `createRunner`, and the real protocol
 * code (outbox, connection, de-duplication, back-pressure) does the rest.
 */
import type { ExecutionDispatch, ExecutionFinished, OutputChunk } from '@kapitan/shared';
import type { ExecutionCallbacks } from './executor';
import type { ExecutionRunner, RunnerFactory } from './manager';

export interface SimulatedOutput {
  /** Lines to print in all. Default 10. */
  lines?: number;
  /** Characters per line, newline included. Default 80. */
  lineChars?: number;
  /** Lines per tick (one chunk per tick). Default 1. */
  linesPerTick?: number;
  /** Milliseconds between ticks. Default 10. */
  tickMs?: number;
  /** Exit code at the end. Default 0. */
  exitCode?: number;
}

export class SimulatedExecution implements ExecutionRunner {
  readonly executionId: string;
  readonly pid = null;
  readonly directory = null;
  startedAt: string | null = null;
  readonly done: Promise<ExecutionFinished>;
  private resolveDone!: (f: ExecutionFinished) => void;
  private timer: NodeJS.Timeout | null = null;
  private printed = 0;
  private seq = 0;
  private paused = false;
  private finished = false;
  private readonly o: Required<SimulatedOutput>;

  constructor(
    dispatch: ExecutionDispatch,
    output: SimulatedOutput,
    private readonly callbacks: ExecutionCallbacks,
  ) {
    this.executionId = dispatch.executionId;
    this.o = { lines: 10, lineChars: 80, linesPerTick: 1, tickMs: 10, exitCode: 0, ...output };
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  async start(): Promise<void> {
    this.startedAt = new Date().toISOString();
    this.callbacks.onStarted?.({ executionId: this.executionId, startedAt: this.startedAt });
    this.schedule();
  }

  private schedule(): void {
    if (this.finished || this.paused || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.tick();
    }, this.o.tickMs);
  }

  private tick(): void {
    if (this.finished || this.paused) return;
    const n = Math.min(this.o.linesPerTick, this.o.lines - this.printed);
    if (n > 0) {
      let data = '';
      for (let i = 0; i < n; i++) {
        const head = `line ${this.printed + i} `;
        data += head + 'x'.repeat(Math.max(0, this.o.lineChars - head.length - 1)) + '\n';
      }
      this.printed += n;
      const chunk: OutputChunk = { seq: this.seq++, stream: 'stdout', data };
      this.callbacks.onChunk?.(chunk);
    }
    if (this.printed >= this.o.lines) return this.finish(this.o.exitCode === 0 ? 'succeeded' : 'failed', this.o.exitCode, null);
    this.schedule();
  }

  private finish(status: ExecutionFinished['status'], exitCode: number | null, reason: string | null): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer) clearTimeout(this.timer);
    const f: ExecutionFinished = {
      executionId: this.executionId,
      status,
      exitCode,
      signal: null,
      finishedAt: new Date().toISOString(),
      lastSeq: this.seq - 1,
      reason,
    };
    this.callbacks.onFinished?.(f);
    this.resolveDone(f);
  }

  cancel(): boolean {
    if (this.finished) return false;
    this.finish('cancelled', null, 'cancelled');
    return true;
  }

  pause(): void {
    this.paused = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.schedule();
  }
}

/** A RunnerFactory for ExecutionManager/Agent; `output` may depend on the dispatch (e.g. its args). */
export function simulatedRunnerFactory(output: SimulatedOutput | ((d: ExecutionDispatch) => SimulatedOutput) = {}): RunnerFactory {
  return (dispatch, callbacks) => new SimulatedExecution(dispatch, typeof output === 'function' ? output(dispatch) : output, callbacks);
}
