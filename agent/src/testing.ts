/**
 * `@kapitan/agent/testing`: pieces for simulated agents (benchmarks with
 * thousands of agents in one process) and tests, kept out of the runtime's
 * own exports.
 */
export * from './simulated';
export * from './simulated-docker';
export * from './simulated-metrics';
export { MetricsSampler } from './metrics/sampler';
export * from './docker-fixture';
export * from './docker-proxy';
