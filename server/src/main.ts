import 'reflect-metadata';
import { createApp } from './app.factory';
import { ConfigError, loadConfig } from './config/config';

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
  const app = await createApp(config);
  await app.listen(config.port, config.host);
  const url = await app.getUrl();
  const shown = url.replace('[::1]', 'localhost').replace('0.0.0.0', 'localhost').replace('127.0.0.1', 'localhost');
  process.stdout.write(
    `Kapitan is listening on ${shown} (database: ${config.database.type}, data: ${config.dataDir})\n`,
  );
}

main().catch((err) => {
  process.stderr.write(`kapitan: failed to start: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
