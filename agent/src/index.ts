/**
 * The agent's building blocks, for the `kapitan-agent` CLI and for anything
 * that speaks the agent protocol in-process. What only simulated agents and
 * tests use is exported from `@kapitan/agent/testing` (testing.ts) instead.
 */
export * from './backoff';
export * from './logger';
export * from './state';
export * from './journal';
export * from './facts';
export * from './outbox';
export * from './execution-channel';
export * from './spool';
export * from './process-group';
export * from './line-chunker';
export * from './executor';
export * from './manager';
export * from './connection';
export * from './file-cache';
export * from './deploy-writer';
export * from './image-loader';
export * from './image-layers';
export * from './delivery-channel';
export * from './delivery-manager';
export * from './config';
export * from './agent';
export { runCli, normaliseServerUrl, parseLabels, type CliContext } from './cli';
export * from './containers/docker-target';
export * from './containers/supervisor';
export * from './containers/operations';
export * from './containers/operation-journal';
export * from './containers/operation-channel';
export * from './containers/logs';
export * from './metrics/host';
export * from './metrics/containers';
export * from './metrics/sampler';
export * from './file-cache';
