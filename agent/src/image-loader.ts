/**
 * Loading a verified image tarball (what `docker save` writes) into this
 * machine's Docker engine, and checking that what the engine now holds is
 * the image the tarball names: `manifest.json` → `Config` is the image
 * config's path (`<hex>.json`, or `blobs/sha256/<hex>` in the OCI layout),
 * and its digest is the image id the engine must report on inspect.
 *
 * dockerode is required lazily: an agent that never receives an image does
 * not load it.
 */
import * as fs from 'node:fs';
import type Docker from 'dockerode';
import { dockerClient, type DockerTarget } from './containers/docker-target';

export class ImageLoadError extends Error {
  constructor(
    readonly code: 'bad_tarball' | 'docker_unavailable' | 'load_failed' | 'id_mismatch',
    message: string,
  ) {
    super(message);
    this.name = 'ImageLoadError';
  }
}

/** Bytes of manifest.json we are willing to read. */
const MANIFEST_MAX = 1024 * 1024;

/**
 * The image ids (`sha256:<hex>`) `manifest.json` names, reading only tar
 * headers and that one member (the tarball may be gigabytes).
 */
export function manifestImageIds(tarball: string): string[] {
  return idsFromManifest(readManifest(tarball));
}

/** Every tag (`RepoTags`) the tarball's manifest.json gives its images: what the engine would name them on load. */
export function manifestRepoTags(tarball: string): string[] {
  return repoTagsOfManifest(readManifest(tarball));
}

/** The same, from the text of a manifest.json (one fetched on its own, by layers). */
export function repoTagsOfManifest(text: string): string[] {
  let manifest: unknown;
  try {
    manifest = JSON.parse(text);
  } catch {
    throw new ImageLoadError('bad_tarball', 'manifest.json is not JSON');
  }
  if (!Array.isArray(manifest)) throw new ImageLoadError('bad_tarball', 'manifest.json lists no image');
  return manifest.flatMap((entry: { RepoTags?: unknown }) => (Array.isArray(entry?.RepoTags) ? entry.RepoTags.filter((t): t is string => typeof t === 'string') : []));
}

/** The text of manifest.json, reading only tar headers and that one member. */
function readManifest(tarball: string): string {
  const fd = fs.openSync(tarball, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const header = Buffer.alloc(512);
    let offset = 0;
    let paxPath: string | null = null;
    while (offset + 512 <= size) {
      fs.readSync(fd, header, 0, 512, offset);
      if (header.every((b) => b === 0)) break;
      const field = (start: number, len: number) => header.subarray(start, start + len).toString('utf8').replace(/\0.*$/s, '');
      const length = parseInt(field(124, 12).trim() || '0', 8);
      if (!Number.isFinite(length) || length < 0) throw new ImageLoadError('bad_tarball', 'the tarball has a malformed header');
      const type = field(156, 1);
      const prefix = header.subarray(257, 262).toString('latin1') === 'ustar' ? field(345, 155) : '';
      const name = paxPath ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
      paxPath = null;
      const body = offset + 512;
      if (type === 'x' && length <= MANIFEST_MAX) {
        const pax = Buffer.alloc(length);
        fs.readSync(fd, pax, 0, length, body);
        const m = /\d+ path=([^\n]*)\n/.exec(pax.toString('utf8'));
        if (m) paxPath = m[1];
      } else if (name.replace(/^\.\//, '') === 'manifest.json') {
        if (length > MANIFEST_MAX) throw new ImageLoadError('bad_tarball', 'manifest.json is implausibly large');
        const buf = Buffer.alloc(length);
        fs.readSync(fd, buf, 0, length, body);
        return buf.toString('utf8');
      }
      offset = body + Math.ceil(length / 512) * 512;
    }
    throw new ImageLoadError('bad_tarball', 'the tarball has no manifest.json: it is not what `docker save` writes');
  } finally {
    fs.closeSync(fd);
  }
}

/** The image ids a manifest.json's text names. */
export function idsFromManifest(text: string): string[] {
  let manifest: unknown;
  try {
    manifest = JSON.parse(text);
  } catch {
    throw new ImageLoadError('bad_tarball', 'manifest.json is not JSON');
  }
  if (!Array.isArray(manifest) || !manifest.length) throw new ImageLoadError('bad_tarball', 'manifest.json lists no image');
  return manifest.map((entry: { Config?: unknown }) => {
    const config = typeof entry?.Config === 'string' ? entry.Config : '';
    const m = /(?:^|\/)([0-9a-f]{64})(?:\.json)?$/.exec(config);
    if (!m) throw new ImageLoadError('bad_tarball', `manifest.json names a config that is not a sha256 digest: ${JSON.stringify(config).slice(0, 120)}`);
    return `sha256:${m[1]}`;
  });
}

export type LoadProgress = (message: string) => void;

/** A tar made on the fly (an image by layers, image-layers.ts): how to stream it, and the image ids its manifest names. */
export interface ImageTarSource {
  open(): NodeJS.ReadableStream;
  imageIds: string[];
  /** Said in a failed load's reason: what the tar leaves out, and why that may be it. */
  note?: string;
}

/** Loads a tarball (a path, or a tar made on the fly) into the engine; resolves with the image ids now present and checked. */
export async function loadImage(tarball: string | ImageTarSource, engine: string | DockerTarget, onProgress?: LoadProgress): Promise<string[]> {
  const expected = typeof tarball === 'string' ? manifestImageIds(tarball) : tarball.imageIds;
  const note = typeof tarball === 'string' || !tarball.note ? '' : ` (${tarball.note})`;
  const target: DockerTarget = typeof engine === 'string' ? { kind: 'unix', socketPath: engine } : engine;
  // Lazy (dockerClient requires dockerode on first use): only agents that receive images pay for it.
  const docker = dockerClient(target);
  try {
    await docker.ping();
  } catch (err) {
    throw new ImageLoadError('docker_unavailable', `no Docker engine answers on ${describeTarget(target)} (${(err as Error).message})`);
  }
  let stream: NodeJS.ReadableStream;
  try {
    stream = await docker.loadImage(typeof tarball === 'string' ? fs.createReadStream(tarball) : tarball.open(), { quiet: false });
  } catch (err) {
    throw new ImageLoadError('load_failed', `the engine refused the image: ${(err as Error).message}`);
  }
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null, events: { error?: string; errorDetail?: { message?: string } }[]) => {
        const failed = err?.message ?? events?.find((e) => e.error || e.errorDetail)?.error;
        if (failed) reject(new ImageLoadError('load_failed', `docker load failed: ${failed}${note}`));
        else resolve();
      },
      (e: { stream?: string; status?: string }) => {
        const line = (e.stream ?? e.status ?? '').trim();
        if (line) onProgress?.(line);
      },
    );
  });
  for (const id of expected) {
    let actual: string;
    try {
      actual = (await docker.getImage(id).inspect()).Id;
    } catch {
      throw new ImageLoadError('id_mismatch', `after loading, the engine has no image ${id} (the id the tarball's manifest names)`);
    }
    if (actual !== id) throw new ImageLoadError('id_mismatch', `the engine reports image ${actual}, not the ${id} the tarball's manifest names`);
  }
  return expected;
}

function describeTarget(t: DockerTarget): string {
  return t.kind === 'unix' ? t.socketPath : `${t.protocol}://${t.host}:${t.port}`;
}
