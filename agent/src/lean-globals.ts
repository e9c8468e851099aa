/**
 * Imported first by main.ts. engine.io-client reads `globalThis.WebSocket`
 * when it loads; on Node ≥ 22 that one read materialises Node's lazy
 * WebSocket global, which loads all of undici (and http2, worker_threads)
 * into an agent that talks through the `ws` package and never uses it —
 * megabytes of idle memory. It is deleted before anything reads it (the
 * agent's own HTTP goes through node:http(s), where pins and proxies apply).
 */
import { setFlagsFromString } from 'node:v8';

delete (globalThis as { WebSocket?: unknown }).WebSocket;
if (process.argv[2] === 'run') {
  // An idle agent is mostly waiting: V8's size-over-speed heuristics (heap growth, code) cost it nothing measurable.
  setFlagsFromString('--optimize-for-size');
}
export {};
