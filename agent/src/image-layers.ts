/**
 * Distributing an image by layers: fetch only the layers this machine's
 * engine lacks, and hand `docker load` a tar of manifest.json, the config and
 * those layers.
 *
 * Why this works: `docker load` (moby image/tarexport/load.go) looks each
 * layer up in its layer store by chain id and reads the layer's file only
 * when it is missing; a layer it reads must have the DiffID the config gives
 * it. So a tar without the layers the engine has loads the same image.
 *
 * The steps, each checked:
 * 1. The server's layer index of the file (GET …/image-index, same credential
 *    and grant as the bytes): where manifest.json, the config and each layer
 *    lie in the stored tarball. None (404), unusable, or for other bytes than
 *    the dispatch names → the whole tarball, as before.
 * 2. The engine's chain ids: every local image's RootFS.Layers, chained. An
 *    engine that cannot tell → the whole tarball. No layer present → the
 *    whole tarball too (the same bytes, one digest for all of them).
 * 3. manifest.json and the config, as byte ranges of the file, into the
 *    download cache under their own digests. The whole file's sha256 can no
 *    longer be checked when only part of it moves, so instead: manifest.json
 *    must hash to the index's sha256 (the server's word, as the whole file's
 *    digest was), the config to the digest it is named by (the image id), and
 *    both must say what the index says (config path, layer paths, diffIDs).
 * 4. Each missing layer as a byte range, verified against the diffID the
 *    (verified) config gives it before anything else sees it; docker load
 *    checks it once more. The cache keeps layers by diffID, so a layer two
 *    images share is fetched once even after the first image is gone.
 * 5. The tar is made on the fly from the cache entries (held until the load
 *    ends) and streamed to the engine; the loaded image's id is checked
 *    against the manifest, as for a whole tarball.
 *
 * An engine that claims (or is claimed) to have a layer it lacks fails the
 * load cleanly: docker load finds no file for that layer and creates no
 * image; the reason says which layers were left out.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { agentImageIndexPath, ImageIndexSchema, type DeliveryTransfer, type FileRef, type ImageIndex } from '@kapitan/shared';
import { dockerClient, type DockerTarget } from './containers/docker-target';
import type { CacheLease, FileCache } from './file-cache';
import { idsFromManifest, ImageLoadError, repoTagsOfManifest, type ImageTarSource } from './image-loader';
import type { Logger } from './logger';

/** The chain ids the engine's layer store holds, or null when it cannot tell. */
export type LayerProbe = () => Promise<Set<string> | null>;

const sha256hex = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');

/** Chain ids of an image's layers, bottom first: the first is its diffID, each next sha256("<chain below> <diffID>"). */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) out.push(out.length === 0 ? d : `sha256:${sha256hex(`${out[out.length - 1]} ${d}`)}`);
  return out;
}

/** Asks the engine: the chain ids of every local image's layers (an image removed while asking is skipped). */
export function engineLayerProbe(engine: string | DockerTarget, logger: Logger): LayerProbe {
  return async () => {
    try {
      const docker = dockerClient(typeof engine === 'string' ? { kind: 'unix', socketPath: engine } : engine);
      const out = new Set<string>();
      for (const img of await docker.listImages()) {
        const layers = await docker
          .getImage(img.Id)
          .inspect()
          .then((i) => i.RootFS?.Layers, () => undefined);
        if (Array.isArray(layers)) for (const c of chainIds(layers)) out.add(c);
      }
      return out;
    } catch (err) {
      logger.warn('the engine could not list its image layers: the image is sent whole', { error: (err as Error).message });
      return null;
    }
  };
}

export interface LayerPlan {
  index: ImageIndex;
  /** Per layer, bottom first: does the engine have it (its chain id)? */
  present: boolean[];
}

/** Steps 1 and 2: what the engine has of the image, or null to send the tarball whole. */
export async function planLayers(file: FileRef, cache: FileCache, probe: LayerProbe, log: Logger): Promise<LayerPlan | null> {
  let raw: unknown;
  try {
    raw = await cache.fetchJson(agentImageIndexPath(file.fileId));
  } catch (err) {
    log.warn('no image index from the server: the image is sent whole', { error: (err as Error).message });
    return null;
  }
  if (raw === null) return null;
  const parsed = ImageIndexSchema.safeParse(raw);
  if (!parsed.success) {
    log.warn('the server sent an image index this agent cannot use: the image is sent whole', { issue: parsed.error.issues[0]?.message });
    return null;
  }
  const index = parsed.data;
  if (index.fileId !== file.fileId || index.sha256 !== file.sha256 || index.size !== file.size) {
    log.warn('the image index is of other bytes than the delivery names: the image is sent whole', { indexSha256: index.sha256, fileSha256: file.sha256 });
    return null;
  }
  const have = await probe();
  if (!have) return null;
  return { index, present: chainIds(index.layers.map((l) => l.diffId)).map((c) => have.has(c)) };
}

/** An image assembled from the cache, ready for loadImage; hold it until the load ended, then release. */
export interface LayeredImage extends ImageTarSource {
  repoTags: string[];
  transfer: DeliveryTransfer;
  release(): void;
}

const clean = (p: string) => posix.normalize(p).replace(/^(\.\/)+/, '');

/** Steps 3 to 5: fetch and verify what the plan lacks; `onHave` gets the bytes of the file this machine now has (layers present included). */
export async function fetchByLayers(plan: LayerPlan, file: FileRef, cache: FileCache, onHave: (bytes: number) => void): Promise<LayeredImage> {
  const { index, present } = plan;
  const leases: CacheLease[] = [];
  let moved = 0;
  let have = index.layers.reduce((n, l, i) => n + (present[i] ? l.size : 0), 0);
  const hold = async (span: { offset: number; size: number }, hex: string, what: string): Promise<CacheLease> => {
    const lease = await cache.acquire({ fileId: file.fileId, sha256: hex, size: span.size, part: { offset: span.offset, fileSha256: file.sha256, what } }, (r) => onHave(have + r));
    leases.push(lease);
    moved += lease.fetched;
    have += span.size;
    onHave(have);
    return lease;
  };
  try {
    const manifest = await hold(index.manifest, index.manifest.sha256, 'manifest.json of the image');
    const config = await hold(index.config, index.config.digest.slice('sha256:'.length), `the image config ${index.config.digest}`);
    const manifestText = fs.readFileSync(manifest.path, 'utf8');
    agreeWithIndex(manifestText, fs.readFileSync(config.path), index);
    const entries: TarEntry[] = [
      { name: 'manifest.json', path: manifest.path, size: manifest.size },
      { name: index.config.name, path: config.path, size: config.size },
    ];
    for (const [i, layer] of index.layers.entries()) {
      if (present[i]) continue;
      const lease = await hold(layer, layer.diffId.slice('sha256:'.length), `layer ${i + 1} of ${index.layers.length} (${layer.diffId})`);
      // The same diffID at two places in one image: one cache entry, written under both names.
      entries.push({ name: layer.name, path: lease.path, size: lease.size });
    }
    const left = present.filter(Boolean).length;
    return {
      imageIds: idsFromManifest(manifestText),
      repoTags: repoTagsOfManifest(manifestText),
      transfer: { movedBytes: moved, layers: { present: left, total: index.layers.length } },
      note: `sent by layers: ${left} of ${index.layers.length} left out as present in this machine's engine; if one is gone, distribute again`,
      open: () => Readable.from(tarOf(entries)),
      release: () => {
        for (const l of leases.splice(0)) l.release();
      },
    };
  } catch (err) {
    for (const l of leases.splice(0)) l.release();
    throw err;
  }
}

/** manifest.json and the config (both verified by digest) must say what the index says, or the index is not of this image. */
function agreeWithIndex(manifestText: string, configBytes: Buffer, index: ImageIndex): void {
  const bad = (what: string) => new ImageLoadError('bad_tarball', `the image index does not match the image: ${what}; nothing was loaded`);
  let manifest: unknown;
  let config: { rootfs?: { diff_ids?: unknown } };
  try {
    manifest = JSON.parse(manifestText);
    config = JSON.parse(configBytes.toString('utf8'));
  } catch {
    throw bad('manifest.json or the config is not JSON');
  }
  if (!Array.isArray(manifest) || manifest.length !== 1) throw bad('manifest.json does not list exactly one image');
  const e = manifest[0] as { Config?: unknown; Layers?: unknown };
  if (typeof e.Config !== 'string' || clean(e.Config) !== index.config.name) throw bad('another config path');
  if (idsFromManifest(manifestText)[0] !== index.config.digest) throw bad('another config digest');
  const layers = Array.isArray(e.Layers) ? e.Layers : [];
  if (layers.length !== index.layers.length || layers.some((l, i) => typeof l !== 'string' || clean(l) !== index.layers[i].name)) throw bad('other layer paths');
  const diffIds = config?.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.length !== index.layers.length || diffIds.some((d, i) => d !== index.layers[i].diffId)) throw bad('other layer diffIDs');
}

// ---------------------------------------------------------------- tar

interface TarEntry {
  /** A normalised relative path (checked by the server's index and again against the verified manifest). */
  name: string;
  path: string;
  size: number;
}

const OCTAL_SIZE_MAX = 0o77777777777;

function octal(buf: Buffer, value: number, at: number, width: number): void {
  buf.write(`${value.toString(8).padStart(width - 1, '0')}\0`, at, width, 'latin1');
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

/** One ustar header (after a pax header when the name or size does not fit). */
function header(name: string, size: number, type: '0' | '5' | 'x', mtime: number): Buffer {
  const h = Buffer.alloc(512);
  const fits = Buffer.byteLength(name) <= 100;
  h.write(fits ? name : name.slice(-100), 0, 100, 'utf8');
  octal(h, type === '5' ? 0o755 : 0o644, 100, 8);
  octal(h, 0, 108, 8);
  octal(h, 0, 116, 8);
  octal(h, Math.min(size, OCTAL_SIZE_MAX), 124, 12);
  octal(h, mtime, 136, 12);
  h.fill(0x20, 148, 156);
  h.write(type, 156, 1, 'latin1');
  h.write('ustar\0', 257, 6, 'latin1');
  h.write('00', 263, 2, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return h;
}

function headers(name: string, size: number, type: '0' | '5', mtime: number): Buffer[] {
  const records = (Buffer.byteLength(name) > 100 ? paxRecord('path', name) : '') + (size > OCTAL_SIZE_MAX ? paxRecord('size', String(size)) : '');
  if (!records) return [header(name, size, type, mtime)];
  const body = Buffer.from(records, 'utf8');
  return [header('PaxHeader', body.length, 'x', mtime), body, Buffer.alloc((512 - (body.length % 512)) % 512), header(name, size, type, mtime)];
}

async function* tarOf(entries: readonly TarEntry[]): AsyncGenerator<Buffer> {
  const mtime = Math.floor(Date.now() / 1000);
  const dirs = new Set<string>();
  for (const e of entries) {
    const parts = e.name.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (dirs.has(dir)) continue;
      dirs.add(dir);
      yield* headers(`${dir}/`, 0, '5', mtime);
    }
    yield* headers(e.name, e.size, '0', mtime);
    let n = 0;
    for await (const chunk of fs.createReadStream(e.path, { highWaterMark: 1024 * 1024 })) {
      n += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
    if (n !== e.size) throw new Error(`${e.name}: the cache entry has ${n} bytes, ${e.size} expected`);
    if (n % 512) yield Buffer.alloc(512 - (n % 512));
  }
  yield Buffer.alloc(1024);
}
