/**
 * Imported first by main.ts. engine.io-client reads `globalThis.WebSocket`
 * when it loads; on Node ≥ 22 that one read materialises Node's lazy
 * WebSocket global, which loads all of undici (and http2, worker_threads)
 * into an agent that talks through the `ws` package and never uses it —
 * megabytes of idle memory. `run` deletes the global before anything reads
 * it. `enrol` keeps it: it uses `fetch`, and lives a second.
 */
import { setFlagsFromString } from 'node:v8';

if (process.argv[2] === 'run') {
  delete (globalThis as { WebSocket?: unknown }).WebSocket;
  // An idle agent is mostly waiting: V8's size-over-speed heuristics (heap growth, code) cost it nothing measurable.
  setFlagsFromString('--optimize-for-size');
}
export {};
