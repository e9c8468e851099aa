import * as fs from 'node:fs';
import { createServer } from 'node:net';
import * as path from 'node:path';
import { MachineFactsSchema } from '@kapitan/shared';
import { agentVersion, collectFacts, dockerAvailable, osName } from './facts';
import { tmpDir } from './test-support/wait';

describe('facts', () => {
  it('collects facts that satisfy the shared schema', async () => {
    const facts = await collectFacts({ dockerSocket: '/nonexistent/docker.sock' });
    expect(MachineFactsSchema.parse(facts)).toEqual(facts);
    expect(facts.agentVersion).toBe(JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')).version);
    expect(facts.agentVersion).toBe(agentVersion());
    expect(facts.dockerAvailable).toBe(false);
    expect(facts.cpus).toBeGreaterThan(0);
    expect(facts.memoryBytes).toBeGreaterThan(0);
  });

  it('reads PRETTY_NAME from os-release', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'os-release');
    fs.writeFileSync(file, 'NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n');
    expect(osName(file)).toBe('Debian GNU/Linux 12 (bookworm)');
    fs.writeFileSync(file, 'PRETTY_NAME=Alpine\n');
    expect(osName(file)).toBe('Alpine');
    expect(osName(path.join(dir, 'missing'))).toMatch(/\S/);
    fs.rmSync(dir, { recursive: true });
  });

  it('gives up on a Docker socket that does not answer within the timeout', async () => {
    const dir = tmpDir();
    const sock = path.join(dir, 'docker.sock');
    const silent = createServer(() => undefined); // accepts, never answers
    await new Promise<void>((r) => silent.listen(sock, r));
    try {
      const t0 = Date.now();
      expect(await dockerAvailable(sock, 300)).toBe(false);
      expect(Date.now() - t0).toBeLessThan(2000);
    } finally {
      silent.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
