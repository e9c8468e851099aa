/**
 * What a benchmark "script" asks a simulated agent to write.
 *
 * The script carries one directive line, `# kapitan-bench {json}` (an
 * {@link OutputSpec}); a simulated agent runs agent/'s own
 * SimulatedExecution (agent/src/simulated.ts) with it instead of spawning a
 * shell: `linesPerTick` lines of `lineBytes` bytes become one chunk every
 * `tickMs`. The shell body below the directive writes the same number of
 * lines, for a real agent.
 */
import { DEFAULT_COALESCE_CHARS, DEFAULT_COALESCE_MS } from '@kapitan/agent';
import type { SimulatedOutput } from '@kapitan/agent/testing';

export interface OutputSpec {
  /** Lines in all. */
  lines: number;
  /** Bytes per line, newline included. */
  lineBytes: number;
  linesPerTick: number;
  tickMs: number;
  /** Wait this long after the dispatch before starting (time for a dashboard to subscribe). */
  delayMs?: number;
}

/** As fast as the agent's back-pressure allows: a 32 KiB chunk (the executor's coalescing bound) per timer tick. */
export function flatOut(lines: number, lineBytes: number, delayMs?: number): OutputSpec {
  return { lines, lineBytes, linesPerTick: Math.max(1, Math.floor(DEFAULT_COALESCE_CHARS / lineBytes)), tickMs: 0, delayMs };
}

/**
 * About `perSecond` lines a second, cut the way the executor cuts a steady
 * writer's output: what 15 ms (its coalescing period) bring, as one chunk —
 * or one line per chunk when lines come slower than that.
 */
export function paced(lines: number, lineBytes: number, perSecond: number, delayMs?: number): OutputSpec {
  const perTick = (perSecond * DEFAULT_COALESCE_MS) / 1000;
  if (perTick < 1) return { lines, lineBytes, linesPerTick: 1, tickMs: Math.round(1000 / perSecond), delayMs };
  return { lines, lineBytes, linesPerTick: Math.round(perTick), tickMs: DEFAULT_COALESCE_MS, delayMs };
}

/** Lines per second the spec asks for (timer ticks taken at face value). */
export function specRate(spec: OutputSpec): number {
  return spec.tickMs > 0 ? (spec.linesPerTick * 1000) / spec.tickMs : Infinity;
}

const TAG = '# kapitan-bench ';

export function benchScript(spec: OutputSpec): string {
  return ['#!/bin/sh', `${TAG}${JSON.stringify(spec)}`, `i=0; while [ $i -lt ${spec.lines} ]; do echo "line $i"; i=$((i+1)); done`, ''].join('\n');
}

export function parseSpec(script: string): OutputSpec | null {
  const at = script.indexOf(TAG);
  if (at < 0) return null;
  const end = script.indexOf('\n', at);
  try {
    return JSON.parse(script.slice(at + TAG.length, end < 0 ? undefined : end)) as OutputSpec;
  } catch {
    return null;
  }
}

export function simulatedOutput(spec: OutputSpec): SimulatedOutput {
  return { lines: spec.lines, lineChars: spec.lineBytes, linesPerTick: spec.linesPerTick, tickMs: spec.tickMs, exitCode: 0 };
}

/** Lines in a chunk of data (its newlines). */
export function countLines(data: string): number {
  let n = 0;
  for (let i = data.indexOf('\n'); i >= 0; i = data.indexOf('\n', i + 1)) n++;
  return n;
}
