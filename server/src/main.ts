import './compile-cache';
import 'reflect-metadata';
import { createApp } from './app.factory';
import { ConfigError, loadConfig } from './config/config';
import { TlsService } from './tls/tls.service';
import { DrainService } from './drain/drain.service';
import type { INestApplication } from '@nestjs/common';
import type { Server } from 'node:net';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`kapitan: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  stopWhenParentGoes();
  const app = await createApp(config);
  stopGracefullyOnSignals(app, config.shutdownTimeoutMs);
  await app.listen(config.port, config.host);
  const httpsPort = await app.get(TlsService).listen(app.getHttpServer(), config.host);
  const url = await app.getUrl();
  const shown = url.replace('[::1]', 'localhost').replace('0.0.0.0', 'localhost').replace('127.0.0.1', 'localhost');
  const https = httpsPort === null ? '' : ` and ${shown.replace(/^http:/, 'https:').replace(/:\d+$/, `:${httpsPort}`)}`;
  process.stdout.write(
    `Kapitan is listening on ${shown}${https} (database: ${config.database.type}, data: ${config.dataDir})\n`,
  );
}

/**
 * SIGTERM, SIGINT: drain (DrainService: no new connections, health
 * 503, agents and dashboards told to move, their writes in flight waited
 * for), then Nest's shutdown hooks (output flushed, presence written, the
 * database closed), then exit 0. All of it within `timeoutMs`, or exit 1
 * anyway: an orchestrator's own SIGKILL comes later than that, and a stuck
 * stop must not hold a rolling restart. A second signal changes nothing
 * (start.mjs forwards one, a supervisor may send another).
 */
function stopGracefullyOnSignals(app: INestApplication, timeoutMs: number): void {
  let stopping = false;
  // The terminal may be gone (SIGHUP): a report that cannot be written must not keep the process from exiting.
  const say = (stream: NodeJS.WriteStream, text: string): void => {
    try {
      stream.write(text);
    } catch {
      // nowhere to say it
    }
  };
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    const started = Date.now();
    setTimeout(() => {
      say(process.stderr, `kapitan: did not stop within ${timeoutMs} ms of ${signal} (KAPITAN_SHUTDOWN_TIMEOUT_SECONDS): exiting anyway\n`);
      process.exit(1);
    }, timeoutMs).unref();
    const tls = app.get(TlsService).listener;
    Promise.resolve()
      .then(() => app.get(DrainService).drain([app.getHttpServer() as Server, tls]))
      .then(() => app.close())
      .then(
        () => {
          say(process.stdout, `Kapitan stopped (${signal}) in ${Date.now() - started} ms\n`);
          process.exit(0);
        },
        (err: unknown) => {
          say(process.stderr, `kapitan: failed to stop cleanly: ${err instanceof Error ? err.stack : String(err)}\n`);
          process.exit(1);
        },
      );
  };
  // Not SIGHUP: the terminal is gone, and the pretty logger's worker would block every log line of a drain
  // writing into it, for ever. A hang-up ends the process at once (the agents send again what was not acked).
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => stop(signal));
}

/**
 * Started by `npm start` with an IPC channel: the channel closing means the
 * parent is gone (or asked us to stop), so stop as on SIGTERM — unless a
 * signal already started the shutdown (stopGracefullyOnSignals ignores a
 * second one, but there is no need to send it).
 */
function stopWhenParentGoes(): void {
  if (!process.send) return;
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  let stopping = false;
  const noteStopping = () => (stopping = true);
  for (const signal of signals) process.once(signal, noteStopping);
  process.once('disconnect', () => {
    if (stopping) return;
    // Ours off first: before Nest listens (still starting), SIGTERM must still end the process.
    for (const signal of signals) process.off(signal, noteStopping);
    process.kill(process.pid, 'SIGTERM');
  });
}

main().catch((err) => {
  process.stderr.write(`kapitan: failed to start: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
