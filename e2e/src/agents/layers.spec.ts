/**
 * Image distribution by layers, with the real Docker engine and a real agent
 * process: v1 (one layer) goes whole; v2 = v1 plus one layer moves only that
 * layer with manifest.json and the config — asserted from the byte counts the
 * agent reports and the server stores, against the members' sizes in the
 * tarball itself — and loads with its id checked. Adversarial: a layer
 * tampered with in the server's store is refused by the agent (no image), and
 * an agent claiming layers its engine lacks fails the load cleanly (no image).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { isFinalDelivery, type Delivery, type DeliveryFinished, type DeliveryMachine, type StoredFile } from '@kapitan/shared';
import { chainIds, DeliveryManager, FileCache, Outbox, type OutboxMessage } from '@kapitan/agent';
import { buildBusyboxImage, buildLayeredImage, imageId, imageLayers, removeImages, saveImage, type BuiltImage } from '@kapitan/agent/testing';
import { makeTempDir, removeDir, requireDockerSync, startServer, waitFor, type TestAgent, type TestServer } from '../harness';
import { enrolRaw, setupProject, startOnlineAgent, type TestProject } from './fixtures';

/** Sizes of the members of a docker save tarball, read with the system's tar (not with Kapitan's index). */
function memberSizes(tarball: string, dir: string): { manifest: number; config: number; layers: number[]; configName: string; layerNames: string[] } {
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('tar', ['-xf', tarball, '-C', dir]);
  const [m] = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as { Config: string; Layers: string[] }[];
  const size = (p: string) => fs.statSync(path.join(dir, p)).size;
  return { manifest: size('manifest.json'), config: size(m.Config), layers: m.Layers.map(size), configName: m.Config, layerNames: m.Layers };
}

const docker = requireDockerSync();

describe('image distribution by layers, real engine (SQLite)', () => {
  let server: TestServer;
  let p: TestProject;
  let agent: TestAgent;
  let dir: string;
  const tag = (name: string) => `kapitan-test/layers-${name}:${process.pid}`;
  const images: BuiltImage[] = [];
  let base: BuiltImage;

  beforeAll(async () => {
    if (docker) return;
    dir = await makeTempDir('kapitan-e2e-layers-');
    server = await startServer({ database: 'sqlite' });
    p = await setupProject(server.url, 'layers');
    agent = await startOnlineAgent(server.url, p);
    base = await buildBusyboxImage(tag('v1'), `layers base ${Date.now()}`);
    images.push(base);
  });
  afterAll(async () => {
    await agent?.dispose();
    await server?.dispose();
    // Children first: an image is not removed while another is built on it.
    for (const img of images.reverse()) await removeImages(img.tag, img.id);
    if (dir) await removeDir(dir);
  });

  /** A saved tarball of `img`, uploaded; the image then leaves the engine (its parents stay unless removed too). */
  async function upload(img: BuiltImage, name: string): Promise<{ file: StoredFile; tarball: string }> {
    const tarball = path.join(dir, `${name}.tar`);
    await saveImage(img.tag, tarball);
    const file = await p.api.uploadFile(p.projectId, 'image', `${name}.tar`, fs.readFileSync(tarball));
    return { file, tarball };
  }

  async function distribute(fileId: string, machineId: string): Promise<Delivery> {
    const res = await p.api.request<Delivery>('POST', `/api/projects/${p.projectId}/distributions`, { body: { fileId, targets: { machineIds: [machineId] } } });
    if (res.status !== 201) throw new Error(`distribution: HTTP ${res.status} ${res.text}`);
    return res.body;
  }

  const finalPart = (deliveryId: string): Promise<DeliveryMachine> =>
    waitFor(
      async () => {
        const d = (await p.api.request<Delivery>('GET', `/api/deliveries/${deliveryId}`)).body;
        return d.machines.length && isFinalDelivery(d.machines[0].status) ? d.machines[0] : null;
      },
      { timeoutMs: 90_000, intervalMs: 100, message: `distribution ${deliveryId} to end` },
    );

  test('v1 moves whole; v2 (v1 plus one layer) moves only its new layer, manifest and config, and loads with its id checked', async () => {
    if (docker) return;
    // A payload that dwarfs manifest and config, so "only the new layer" is plain in the numbers.
    const v2 = await buildLayeredImage(tag('v2'), base.tag, randomBytes(300 * 1024));
    images.push(v2);
    const one = await upload(base, 'v1');
    const two = await upload(v2, 'v2');
    const sizes = memberSizes(two.tarball, path.join(dir, 'v2-members'));
    expect(sizes.layers).toHaveLength(2);
    await removeImages(v2.tag, v2.id, base.tag, base.id);
    expect(await imageId(base.id)).toBeNull();

    const first = await finalPart((await distribute(one.file.id, agent.machineId)).id);
    // Nothing of it in the engine: the tarball whole, as before.
    expect(first).toMatchObject({ status: 'succeeded', imageId: base.id, movedBytes: one.file.size, layers: { present: 0, total: 1 } });

    const second = await finalPart((await distribute(two.file.id, agent.machineId)).id);
    expect(second).toMatchObject({ status: 'succeeded', imageId: v2.id, receivedBytes: two.file.size, totalBytes: two.file.size, layers: { present: 1, total: 2 } });
    // Exactly the members that were missing, by the system tar's count of their sizes; the base layer did not move.
    expect(second.movedBytes).toBe(sizes.manifest + sizes.config + sizes.layers[1]);
    expect(second.movedBytes!).toBeLessThan(two.file.size - sizes.layers[0] + 1);
    expect(await imageId(v2.id)).toBe(v2.id);
    expect(await imageId(v2.tag)).toBe(v2.id);
    expect(agent.logs()).toContain('image loaded by layers');

    // The same image again: every byte it needs is in the agent's cache or the engine; nothing moves.
    await removeImages(v2.tag, v2.id);
    const third = await finalPart((await distribute(two.file.id, agent.machineId)).id);
    expect(third).toMatchObject({ status: 'succeeded', imageId: v2.id, movedBytes: 0, layers: { present: 1, total: 2 } });
  });

  test('a layer tampered with in the server\'s store is refused by the agent before docker load: failed with the reason, no image', async () => {
    if (docker) return;
    expect(await imageId(base.tag)).toBe(base.id);
    const payload = randomBytes(200 * 1024);
    const v3 = await buildLayeredImage(tag('v3'), base.tag, payload);
    images.push(v3);
    const { file } = await upload(v3, 'v3');
    await removeImages(v3.tag, v3.id);
    // Same length, one byte changed inside the top layer's payload.
    const blob = path.join(server.dataDir, 'files', 'sha256', file.sha256.slice(0, 2), file.sha256);
    const bytes = fs.readFileSync(blob);
    const at = bytes.indexOf(payload.subarray(0, 4096));
    expect(at).toBeGreaterThan(0);
    bytes[at + 100] ^= 0xff;
    fs.writeFileSync(blob, bytes);
    const part = await finalPart((await distribute(file.id, agent.machineId)).id);
    expect(part.status).toBe('failed');
    expect(part.reason).toMatch(/layer 2 of 2 \(sha256:[0-9a-f]{64}\): the downloaded bytes hash to sha256 [0-9a-f]{64}, not to the sha256:[0-9a-f]{64} it must have; discarded/);
    expect(await imageId(v3.id)).toBeNull();
    expect(fs.readdirSync(path.join(agent.stateDir, 'cache', 'partial'))).toEqual([]);
  });

  test('an agent claiming layers its engine lacks: docker load fails, the failure says what was left out, and no image is created', async () => {
    if (docker) return;
    const v4 = await buildLayeredImage(tag('v4'), base.tag, randomBytes(100 * 1024));
    images.push(v4);
    const layers = await imageLayers(v4.id);
    const { file } = await upload(v4, 'v4');
    await removeImages(v4.tag, v4.id);
    expect(await imageId(v4.id)).toBeNull();

    // An agent of its own (in this process), whose engine probe lies: every layer of v4 "present".
    const machine = await enrolRaw(server.url, p);
    const d = await distribute(file.id, machine.machineId);
    const sent: OutboxMessage[] = [];
    const outbox = new Outbox();
    outbox.attach({ send: (m, cb) => (sent.push(m), cb(null, { ok: true })) });
    const stateDir = path.join(dir, 'liar');
    fs.mkdirSync(stateDir, { recursive: true });
    const manager = new DeliveryManager({
      outbox,
      cache: new FileCache({ dir: path.join(stateDir, 'cache'), maxBytes: 1 << 30, serverUrl: server.url, credential: machine.credential }),
      stateDir,
      deployRoots: [],
      dockerSocket: '/var/run/docker.sock',
      layerProbe: async () => new Set(chainIds(layers)),
    });
    manager.handle({ kind: 'distribution', deliveryId: d.id, file: { fileId: file.id, sha256: file.sha256, size: file.size } });
    await manager.idle();
    const result = await waitFor(() => sent.find((m) => m.event === 'delivery:finished')?.payload as DeliveryFinished | undefined, { timeoutMs: 30_000, message: 'the result' });
    expect(result.status).toBe('failed');
    expect(result.reason).toMatch(/^docker load failed: .*sent by layers: 2 of 2 left out as present in this machine's engine/s);
    expect(await imageId(v4.id)).toBeNull();
    expect(await imageId(v4.tag)).toBeNull();
  });
});
