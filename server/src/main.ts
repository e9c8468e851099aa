import 'reflect-metadata';
import { createApp } from './app.factory';
import { ConfigError, loadConfig } from './config/config';
import { TlsService } from './tls/tls.service';

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
 * Started by `npm start` with an IPC channel: the channel closing means the
 * parent is gone (or asked us to stop), so stop as on SIGTERM — unless a
 * signal already started the shutdown, where a second one would kill us
 * mid-way (Nest removes its handlers once the first arrives).
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
