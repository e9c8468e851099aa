#!/usr/bin/env node
/** The `kapitan-agent` executable. */
import './lean-globals';
import { runCli } from './cli';

const argv = process.argv.slice(2);
const isRun = argv[0] === 'run';
const controller = new AbortController();

const logLine = (level: string, msg: string, extra: Record<string, unknown> = {}): void => {
  process.stderr.write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...extra }) + '\n');
};

// A reader of our output going away must not kill the agent.
process.stdout.on('error', () => undefined);
process.stderr.on('error', () => undefined);

if (isRun) {
  // `run` stops gracefully on the first signal, at once on the second.
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      logLine('warn', `second ${signal}: exiting now`);
      process.exit(130);
    }
    controller.abort();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
// SIGHUP re-reads the client policy (only `run` listens; other commands keep the default). Caught from the
// start, so one that arrives while `run` is still starting is ignored instead of killing the agent.
let reload: (() => void) | null = null;
if (isRun) process.on('SIGHUP', () => reload?.());
const onReload = isRun ? (handler: () => void) => void (reload = handler) : undefined;

process.on('uncaughtException', (err) => {
  logLine('error', 'uncaught exception', { err: { name: err.name, message: err.message, stack: err.stack } });
  process.exit(1);
});

runCli(argv, { stopSignal: controller.signal, onReload }).then(
  (code) => {
    process.exitCode = code;
    // After `run` nothing needs to finish: do not wait for stray timers or sockets. Not unref'd: an
    // unref'd immediate lets the loop block in poll, so with only a silent socket left (Docker's event
    // stream opening as the agent stopped) it never ran and the agent hung after saying it exits.
    if (isRun) setImmediate(() => process.exit(code));
  },
  (err: unknown) => {
    process.stderr.write(`kapitan-agent: ${(err as Error)?.message ?? String(err)}\n`);
    process.exit(1);
  },
);
