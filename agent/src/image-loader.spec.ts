import * as fs from 'node:fs';
import * as path from 'node:path';
import Docker from 'dockerode';
import { buildBusyboxImage, dockerUnavailableReason, imageId, removeImages, saveImage } from './docker-fixture';
import { ImageLoadError, loadImage, manifestImageIds, manifestRepoTags } from './image-loader';
import { tmpDir } from './test-support/wait';

const isCI = /^(1|true|yes)$/i.test(process.env.CI ?? '');
const SOCKET = '/var/run/docker.sock';

describe('loadImage: a docker save tarball into the real engine, its id checked against the manifest', () => {
  let reason: string | null = null;
  let dir: string;
  const tag = `kapitan-test/loader:${process.pid}-${Date.now()}`;
  beforeAll(async () => {
    reason = await dockerUnavailableReason();
    if (reason && isCI) throw new Error(`Docker unavailable under CI=true: ${reason}`);
    if (reason) process.stderr.write(`[agent] SKIP (local run only) — ${reason}\n`);
    dir = tmpDir();
  });
  afterAll(async () => {
    if (!reason) await removeImages(tag);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('loads the image; the manifest names its id and the Docker API finds it', async () => {
    if (reason) return;
    const built = await buildBusyboxImage(tag, `loader ${tag}`);
    const tarball = path.join(dir, 'image.tar');
    await saveImage(tag, tarball);
    expect(manifestImageIds(tarball)).toEqual([built.id]);
    // what the client policy's docker.images checks a load against
    expect(manifestRepoTags(tarball)).toEqual([tag]);
    await removeImages(tag, built.id);
    expect(await imageId(built.id)).toBeNull();
    const seen: string[] = [];
    expect(await loadImage(tarball, SOCKET, (line) => seen.push(line))).toEqual([built.id]);
    expect(seen.join('\n')).toContain(tag);
    expect((await new Docker({ socketPath: SOCKET }).getImage(tag).inspect()).Id).toBe(built.id);

    // The manifest edited to name another config (same length, so the archive stays valid): the load fails, nothing is claimed.
    const tampered = path.join(dir, 'tampered.tar');
    const bytes = fs.readFileSync(tarball);
    const hex = built.id.slice('sha256:'.length);
    const other = hex.replace(/^./, (c) => (c === '0' ? '1' : '0'));
    let text = bytes.toString('latin1');
    const at = text.indexOf(`"Config":"`);
    const configAt = text.indexOf(hex, at);
    expect(at).toBeGreaterThan(-1);
    text = text.slice(0, configAt) + other + text.slice(configAt + hex.length);
    fs.writeFileSync(tampered, Buffer.from(text, 'latin1'));
    expect(manifestImageIds(tampered)).toEqual([`sha256:${other}`]);
    await expect(loadImage(tampered, SOCKET)).rejects.toBeInstanceOf(ImageLoadError);
    // Six real engine round trips (build, save, remove, load, inspect, a refused load): seconds each on a loaded machine.
  }, 60_000);

  it('a file that is not a docker save tarball, or an engine that does not answer: a clear failure', async () => {
    const junk = path.join(dir, 'junk.tar');
    fs.writeFileSync(junk, Buffer.alloc(4096));
    expect(() => manifestImageIds(junk)).toThrow(/no manifest.json/);
    await expect(loadImage(junk, SOCKET)).rejects.toMatchObject({ code: 'bad_tarball' });
    if (reason) return;
    const tarball = path.join(dir, 'image.tar');
    await expect(loadImage(tarball, path.join(dir, 'no-docker.sock'))).rejects.toMatchObject({ code: 'docker_unavailable' });
  });
});
