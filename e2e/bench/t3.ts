import { AgentConnection, createLogger } from '@kapitan/agent/dist/index';
import { KapitanServer } from './lib/servers';
import { runCleanups } from '../src/harness/cleanup';
(async () => {
  const k = await KapitanServer.start({ db: 'mysql' });
  const token = await k.enrolmentToken(5);
  const facts = { hostname: 'h', os: 'o', platform: 'linux', kernel: 'k', arch: 'x64', cpus: 1, memoryBytes: 1, agentVersion: 'v', dockerAvailable: false };
  const res = await fetch(`${k.url}/api/agent/enrol`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token, facts }) });
  const body: any = await res.json();
  console.log(res.status, Object.keys(body));
  console.log((await k.gcStats()).heapUsed);
  const c = new AgentConnection({ serverUrl: k.url, credential: body.credential, facts: () => facts, logger: createLogger({ level: 'debug' }) });
  c.on('connectError', (e: any) => console.log('err', e.message, e.description?.message ?? e.description, e.context?.statusCode));
  await new Promise<void>((r) => { c.on('ready', () => { console.log('ready'); r(); }); c.start(); setTimeout(r, 5000); });
  c.stop();
  console.log(k.server.logs().split('\n').slice(-15).join('\n'));
  await runCleanups();
  process.exit(0);
})();
