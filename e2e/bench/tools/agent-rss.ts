/**
 * RSS of an idle real agent (`kapitan-agent run`) under different Node/V8
 * options, to see what its footprint is made of.
 *
 *   node --require ./bench/register.cjs bench/tools/agent-rss.ts ['' '--max-semi-space-size=1' …]
 */
import { startAgent, waitForMachineStatus } from '../../src/harness/agent';
import { runCleanups } from '../../src/harness/cleanup';
import { readStatus } from '../lib/proc';
import { KapitanServer } from '../lib/servers';
import { sleep } from '../lib/stats';

async function main(): Promise<void> {
  const variants = process.argv.length > 2 ? process.argv.slice(2) : [''];
  const server = await KapitanServer.start({ db: 'sqlite' });
  for (const options of variants) {
    const agent = await startAgent({ serverUrl: server.url, token: await server.enrolmentToken(1), env: { KAPITAN_AGENT_LOG_LEVEL: 'warn', NODE_OPTIONS: options || undefined } });
    await waitForMachineStatus({ api: server.api, projectId: server.projectId, machineId: agent.machineId, status: 'online' });
    await sleep(15_000);
    const s = readStatus(agent.process.pid!)!;
    process.stdout.write(`${JSON.stringify(options || '(none)')}: RSS ${(s.rss / 1e6).toFixed(1)} MB (peak ${(s.hwm / 1e6).toFixed(1)} MB)\n`);
    await agent.dispose();
  }
  await server.dispose();
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => runCleanups().finally(() => process.exit()));
