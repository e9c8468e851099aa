import type { ScenarioResult } from './report';

export type Size = 'small' | 'large';

export interface BenchContext {
  size: Size;
  /** Explicit main size of the scenario (agents, or seconds for the footprint), overriding the preset. */
  n?: number;
  /** Database for the multi-agent scenarios; throughput runs both unless set. */
  db?: 'mysql' | 'sqlite';
  /** Skip the baseline half (quicker iterations while profiling). */
  skipBaseline: boolean;
  /** Write V8 CPU profiles of the Kapitan server here (node --cpu-prof). */
  cpuProfDir?: string;
  log: (line: string) => void;
}

export interface Scenario {
  name: string;
  title: string;
  run(ctx: BenchContext): Promise<ScenarioResult>;
}

export const KiB = 1024;
export const MiB = 1024 * 1024;
