import { createHash, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import type { DeliveryDispatch, DeliveryFinished, DeliveryProgress, EffectivePolicy } from '@kapitan/shared';
import { DeliveryManager } from './delivery-manager';
import { FileCache } from './file-cache';
import { Outbox, type OutboxMessage } from './outbox';
import { PolicyGuard } from './policy';
import { tmpDir, waitFor } from './test-support/wait';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('DeliveryManager: each delivery applied once, its result through the outbox', () => {
  let dir: string;
  let server: http.Server;
  let url: string;
  let requests = 0;
  const body = Buffer.from('deployed bytes\n');
  beforeEach(async () => {
    dir = tmpDir();
    fs.mkdirSync(path.join(dir, 'root'));
    requests = 0;
    server = http.createServer((_req, res) => {
      requests++;
      res.writeHead(200, { 'Content-Length': body.length }).end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(async () => {
    await new Promise((r) => server.close(r));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A manager on `dir` with an outbox whose transport records and acknowledges every message. */
  function manager(policy?: PolicyGuard) {
    const sent: OutboxMessage[] = [];
    const outbox = new Outbox();
    outbox.attach({ send: (m, cb) => (sent.push(m), cb(null, { ok: true })) });
    const cache = new FileCache({ dir: path.join(dir, 'cache'), maxBytes: 1 << 20, serverUrl: url, credential: 'kpm_x.y' });
    const m = new DeliveryManager({ outbox, cache, stateDir: dir, deployRoots: [path.join(dir, 'root')], dockerSocket: '/nonexistent.sock', policy });
    return { m, sent, outbox };
  }
  const finished = (sent: OutboxMessage[]) => sent.filter((s) => s.event === 'delivery:finished').map((s) => s.payload as DeliveryFinished);
  const dispatch = (target: string): DeliveryDispatch => ({
    kind: 'deploy',
    deliveryId: randomUUID(),
    file: { fileId: randomUUID(), sha256: sha(body), size: body.length },
    path: target,
    mode: 0o644,
    owner: null,
  });

  it('a repeat while it runs is ignored; a repeat after it ended (even after a restart) re-sends the result and writes nothing again', async () => {
    const target = path.join(dir, 'root', 'app.conf');
    const d = dispatch(target);
    const first = manager();
    first.m.handle(d);
    first.m.handle(d);
    await first.m.idle();
    await waitFor(() => finished(first.sent).length === 1, 'the result sent');
    expect(finished(first.sent)).toEqual([{ deliveryId: d.deliveryId, status: 'succeeded', reason: null, transfer: { movedBytes: body.length, layers: null } }]);
    const progress = first.sent.filter((s) => s.event === 'delivery:progress').map((s) => (s.payload as DeliveryProgress).status);
    expect(progress[progress.length - 1]).toBe('writing');
    expect(requests).toBe(1);
    expect(fs.readFileSync(target)).toEqual(body);

    // Changed on the machine since: a redelivery must not overwrite it again.
    fs.writeFileSync(target, 'changed locally\n');
    const again = manager();
    again.m.handle(d);
    await again.m.idle();
    await waitFor(() => finished(again.sent).length === 1, 'the remembered result sent again');
    expect(finished(again.sent)[0]).toMatchObject({ deliveryId: d.deliveryId, status: 'succeeded' });
    expect(fs.readFileSync(target, 'utf8')).toBe('changed locally\n');
    expect(requests).toBe(1);
  });

  it('the client policy refuses before any byte is fetched: refused with the rule, remembered for repeats', async () => {
    const policy = (p: Partial<EffectivePolicy>) =>
      new PolicyGuard({
        path: '/etc/kapitan/agent-policy.json',
        found: true,
        sha256: null,
        effective: { scripts: { enabled: true, allowSha256: null }, deploys: { enabled: true, pathPrefixes: [path.join(dir, 'root', 'app')] }, docker: { enabled: true, images: null }, readOnly: false, ...p },
      });
    const target = path.join(dir, 'root', 'other.conf');
    const d = dispatch(target);
    const first = manager(policy({}));
    first.m.handle(d);
    await first.m.idle();
    await waitFor(() => finished(first.sent).length === 1, 'the refusal sent');
    expect(finished(first.sent)).toEqual([
      { deliveryId: d.deliveryId, status: 'refused', reason: `refused by the client policy (/etc/kapitan/agent-policy.json): ${target} is outside deploys.pathPrefixes (${path.join(dir, 'root', 'app')})` },
    ]);
    expect(first.sent.filter((s) => s.event === 'delivery:progress')).toEqual([]);
    expect(requests).toBe(0);
    expect(fs.existsSync(target)).toBe(false);
    // A repeat, after a restart under a looser policy, re-sends the remembered answer; nothing is written.
    const again = manager(policy({ deploys: { enabled: true, pathPrefixes: ['/'] } }));
    again.m.handle(d);
    await waitFor(() => finished(again.sent).length === 1, 'the refusal sent again');
    expect(finished(again.sent)[0]).toMatchObject({ status: 'refused' });
    expect(requests).toBe(0);

    const image = manager(policy({ docker: { enabled: false, images: null } }));
    const load: DeliveryDispatch = { kind: 'distribution', deliveryId: randomUUID(), file: { fileId: randomUUID(), sha256: sha(body), size: body.length } };
    image.m.handle(load);
    await image.m.idle();
    await waitFor(() => finished(image.sent).length === 1, 'the load refused');
    expect(finished(image.sent)[0]).toEqual({ deliveryId: load.deliveryId, status: 'refused', reason: 'refused by the client policy (/etc/kapitan/agent-policy.json): docker is disabled (docker.enabled: false)' });
    expect(requests).toBe(0);
  });

  it('a refusal on the agent is the delivery\'s result, with its reason', async () => {
    const { m, sent } = manager();
    const d = dispatch('/etc/kapitan-should-never-exist');
    m.handle(d);
    await m.idle();
    await waitFor(() => finished(sent).length === 1, 'the result sent');
    expect(finished(sent)[0]).toMatchObject({ status: 'failed', reason: expect.stringContaining('outside the directories this agent may write') });
    expect(fs.existsSync('/etc/kapitan-should-never-exist')).toBe(false);
  });

  it('a distribution with no Docker engine fails with the reason', async () => {
    const { m, sent } = manager();
    const d: DeliveryDispatch = { kind: 'distribution', deliveryId: randomUUID(), file: { fileId: randomUUID(), sha256: sha(body), size: body.length } };
    m.handle(d);
    await m.idle();
    await waitFor(() => finished(sent).length === 1, 'the result sent');
    expect(finished(sent)[0]).toMatchObject({ status: 'failed' });
    expect(finished(sent)[0].reason).toMatch(/manifest\.json|Docker engine/);
  });
});
