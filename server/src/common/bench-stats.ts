import { Inject, Injectable, OnApplicationBootstrap } from '@nestjs/common';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { APP_CONFIG, AppConfig } from '../config/config';

/**
 * Benchmark instrumentation, off unless KAPITAN_BENCH=1 (`npm run bench`
 * sets it; nothing else should; read through the config like every other
 * setting). Then the process writes one JSON line to stdout every
 * KAPITAN_BENCH_INTERVAL_MS (default 1000):
 *
 *   {"kapitanBench":{"reason":"tick","rss":…,"heapUsed":…,"heapTotal":…,
 *    "external":…,"arrayBuffers":…,"lagP50Ms":…,"lagP99Ms":…,"lagMaxMs":…,"elu":…}}
 *
 * with the event-loop delay of the interval (perf_hooks histogram, reset at
 * every line; the 10 ms sampling period is subtracted, so an idle loop shows
 * about 0) and its event-loop utilisation. On SIGWINCH (a signal Nest's
 * shutdown hooks leave alone, ignored by default) it runs a full GC and
 * writes a line at once with `"reason":"gc"`, so the benchmark reads the heap
 * after collection. No endpoint, no change of behaviour otherwise.
 */
export function startBenchStats({ intervalMs }: { intervalMs: number }): void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const RESOLUTION_MS = 10;
  const lag = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  lag.enable();
  let lastElu = performance.eventLoopUtilization();
  const report = (reason: 'tick' | 'gc'): void => {
    const m = process.memoryUsage();
    const elu = performance.eventLoopUtilization(lastElu);
    lastElu = performance.eventLoopUtilization();
    const ms = (ns: number): number => Math.max(0, Math.round(ns / 1e4) / 100 - RESOLUTION_MS);
    const line = {
      kapitanBench: {
        reason,
        at: Date.now(),
        rss: m.rss,
        heapUsed: m.heapUsed,
        heapTotal: m.heapTotal,
        external: m.external,
        arrayBuffers: m.arrayBuffers,
        lagP50Ms: lag.count ? ms(lag.percentile(50)) : 0,
        lagP99Ms: lag.count ? ms(lag.percentile(99)) : 0,
        lagMaxMs: lag.count ? ms(lag.max) : 0,
        elu: Math.round(elu.utilization * 1000) / 1000,
      },
    };
    lag.reset();
    process.stdout.write(JSON.stringify(line) + '\n');
  };
  setInterval(() => report('tick'), intervalMs).unref();
  process.on('SIGWINCH', () => {
    gc();
    gc();
    report('gc');
  });
}

/** Starts the instrumentation once the app is up, when the config asks for it. */
@Injectable()
export class BenchStats implements OnApplicationBootstrap {
  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  onApplicationBootstrap(): void {
    if (this.config.bench) startBenchStats(this.config.bench);
  }
}
