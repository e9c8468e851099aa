/**
 * Indexing an image tarball for layer-wise distribution: where manifest.json,
 * the image config and each layer lie in the tar, so an agent whose engine
 * already has some layers fetches only the others (Range requests of the
 * stored file) and assembles a smaller tar that `docker load` accepts: the
 * engine skips every layer whose chain id its layer store holds, and reads
 * (and checks the DiffID of) the ones it lacks.
 *
 * Only headers and the two small JSON members are read, never a layer, so
 * indexing a multi-GB tarball costs a few thousand seeks. The tarball is an
 * outside input: every header's checksum is checked, every member must lie
 * inside the file, a member whose name leaves the archive (absolute, `..`)
 * makes the whole tarball unindexable, and the manifest's paths are resolved
 * (through links, as docker load does) only to regular members of this
 * archive. Whatever is refused throws ImageIndexError with the reason; the
 * caller keeps nothing and the tarball is sent whole, as before.
 */
import { DigestSchema, IMAGE_INDEX_LIMITS, ImageIndexSchema, type ImageIndex } from '@kapitan/shared';
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { posix } from 'node:path';

export class ImageIndexError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageIndexError';
  }
}

const BLOCK = 512;
/** Members of one tarball we are willing to walk: a docker save has about four per layer. */
const MEMBERS_MAX = 100_000;
/** Pax and GNU long-name bodies: names and a few keywords, never large. */
const EXTENDED_MAX = 64 * 1024;
/** Links followed to reach a member, as a loop guard. */
const LINK_HOPS_MAX = 8;

type MemberType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';

interface Member {
  name: string;
  type: MemberType;
  /** Where the member's data starts in the tarball. */
  offset: number;
  size: number;
  link: string;
}

export interface IndexedFile {
  id: string;
  sha256: string;
  size: number;
}

/** Indexes the tarball open on `fh` (the stored bytes of `file`); throws ImageIndexError when it cannot be sent by layers. */
export async function indexImageTarball(fh: FileHandle, file: IndexedFile): Promise<ImageIndex> {
  const size = (await fh.stat()).size;
  if (size !== file.size) throw new ImageIndexError(`the stored tarball has ${size} bytes, its row says ${file.size}`);
  const members = await readMembers(fh, size);
  const manifestMember = resolve(members, 'manifest.json', 'manifest.json');
  const manifestBytes = await readSmall(fh, manifestMember, 'manifest.json');
  const entry = parseManifest(manifestBytes);

  const configMember = resolve(members, entry.config, 'the config');
  const configHex = /(?:^|\/)([0-9a-f]{64})(?:\.json)?$/.exec(entry.config)?.[1];
  if (!configHex) throw new ImageIndexError(`manifest.json names a config that is not named by its digest: ${JSON.stringify(entry.config).slice(0, 120)}`);
  const configBytes = await readSmall(fh, configMember, 'the config');
  const actual = createHash('sha256').update(configBytes).digest('hex');
  if (actual !== configHex) throw new ImageIndexError(`the config ${entry.config} hashes to sha256:${actual}, not to the digest it is named by`);
  const diffIds = parseDiffIds(configBytes);
  if (diffIds.length !== entry.layers.length) {
    throw new ImageIndexError(`manifest.json lists ${entry.layers.length} layers, the config's rootfs ${diffIds.length}`);
  }
  const oci = members.has('oci-layout');
  const layers = entry.layers.map((name, i) => {
    const m = resolve(members, name, `layer ${i + 1}`);
    // In the OCI layout a layer blob is named by the digest of its stored bytes: another name than the diffID means it is compressed, and the agent could not check it before docker load.
    const blob = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(posix.normalize(name))?.[1];
    if (blob && `sha256:${blob}` !== diffIds[i]) throw new ImageIndexError(`layer ${i + 1} (${name}) is stored compressed: only uncompressed layers are sent by layers`);
    return { name: normalise(name), offset: m.offset, size: m.size, diffId: diffIds[i] };
  });

  const index = {
    fileId: file.id,
    sha256: file.sha256,
    size,
    format: oci ? ('oci' as const) : ('docker-save' as const),
    manifest: { name: 'manifest.json', offset: manifestMember.offset, size: manifestMember.size, sha256: createHash('sha256').update(manifestBytes).digest('hex') },
    config: { name: normalise(entry.config), offset: configMember.offset, size: configMember.size, digest: `sha256:${configHex}` },
    layers,
  };
  const checked = ImageIndexSchema.safeParse(index);
  if (!checked.success) throw new ImageIndexError(`the index is out of bounds: ${checked.error.issues[0].path.join('.')}: ${checked.error.issues[0].message}`);
  return checked.data;
}

// ---------------------------------------------------------------- tar

async function readAt(fh: FileHandle, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await fh.read(buf, 0, length, position);
  if (bytesRead !== length) throw new ImageIndexError(`the tarball ends inside a member at byte ${position + bytesRead}`);
  return buf;
}

const text = (b: Buffer): string => b.toString('utf8').replace(/\0.*$/s, '');

/** A numeric header field: octal digits, or GNU's base-256 (high bit set) for sizes over 8 GiB. */
function numeric(field: Buffer, at: number, what: string): number {
  if (field[0] & 0x80) {
    let n = 0;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i];
    if (field[0] !== 0x80 || !Number.isSafeInteger(n)) throw new ImageIndexError(`the tar header at byte ${at} has an implausible ${what}`);
    return n;
  }
  const s = field.toString('latin1').replace(/\0.*$/s, '').trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new ImageIndexError(`the tar header at byte ${at} has a malformed ${what}`);
  return parseInt(s, 8);
}

function checksumOk(h: Buffer, at: number): boolean {
  const stored = numeric(h.subarray(148, 156), at, 'checksum');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
  return sum === stored;
}

/** `a/./b/` → `a/b`; null for a name that would leave the archive. */
function normaliseMemberName(name: string): string | null {
  if (name.startsWith('/')) return null;
  const n = posix.normalize(name).replace(/\/+$/, '');
  if (n === '..' || n.startsWith('../')) return null;
  return n === '.' ? '' : n;
}

function normalise(name: string): string {
  const n = normaliseMemberName(name);
  if (n === null || n === '') throw new ImageIndexError(`manifest.json names a path outside the archive: ${JSON.stringify(name).slice(0, 200)}`);
  return n;
}

function parsePax(body: Buffer, at: number): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < body.length) {
    const space = body.indexOf(0x20, pos);
    const len = space < 0 ? NaN : Number(body.subarray(pos, space).toString('latin1'));
    if (!Number.isInteger(len) || len <= 0 || pos + len > body.length) throw new ImageIndexError(`the pax header at byte ${at} is malformed`);
    const record = body.subarray(space + 1, pos + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    pos += len;
  }
  return out;
}

async function readMembers(fh: FileHandle, size: number): Promise<Map<string, Member>> {
  const members = new Map<string, Member>();
  let pos = 0;
  let pax: Record<string, string> = {};
  let longName: string | null = null;
  let longLink: string | null = null;
  for (;;) {
    if (pos === size) break;
    if (pos + BLOCK > size) throw new ImageIndexError(`the tarball ends inside a header at byte ${pos}`);
    const h = await readAt(fh, BLOCK, pos);
    if (h.every((b) => b === 0)) break;
    if (!checksumOk(h, pos)) throw new ImageIndexError(`the tar header at byte ${pos} is corrupt (its checksum does not match)`);
    const typeflag = String.fromCharCode(h[156] || 0x30);
    let length = numeric(h.subarray(124, 136), pos, 'size');
    if (pax.size !== undefined) {
      if (!/^\d+$/.test(pax.size)) throw new ImageIndexError(`the pax header before byte ${pos} has a malformed size`);
      length = Number(pax.size);
    }
    const data = pos + BLOCK;
    if (!Number.isSafeInteger(length) || data + length > size) throw new ImageIndexError(`the tar member at byte ${pos} claims ${length} bytes, past the end of the ${size}-byte archive`);
    const next = data + Math.ceil(length / BLOCK) * BLOCK;
    if (typeflag === 'x' || typeflag === 'L' || typeflag === 'K') {
      if (length > EXTENDED_MAX) throw new ImageIndexError(`the extended header at byte ${pos} is implausibly large (${length} bytes)`);
      const body = await readAt(fh, length, data);
      if (typeflag === 'x') pax = { ...pax, ...parsePax(body, pos) };
      else if (typeflag === 'L') longName = text(body);
      else longLink = text(body);
      pos = next;
      continue;
    }
    if (typeflag === 'g') {
      pos = next;
      continue;
    }
    // POSIX ustar only: the old GNU format keeps times, not a name prefix, at that place.
    const ustar = h.subarray(257, 263).toString('latin1') === 'ustar\0';
    const prefix = ustar ? text(h.subarray(345, 500)) : '';
    const raw = pax.path ?? longName ?? (prefix ? `${prefix}/${text(h.subarray(0, 100))}` : text(h.subarray(0, 100)));
    const link = pax.linkpath ?? longLink ?? text(h.subarray(157, 257));
    pax = {};
    longName = null;
    longLink = null;
    const name = normaliseMemberName(raw);
    if (name === null) throw new ImageIndexError(`the tarball holds a member outside the archive: ${JSON.stringify(raw).slice(0, 200)}`);
    const type: MemberType =
      typeflag === '0' || typeflag === '7' ? 'file' : typeflag === '5' ? 'dir' : typeflag === '2' ? 'symlink' : typeflag === '1' ? 'hardlink' : 'other';
    if (name !== '') {
      if (members.has(name) && type !== 'dir') throw new ImageIndexError(`the tarball holds ${JSON.stringify(name).slice(0, 200)} twice`);
      members.set(name, { name, type, offset: data, size: type === 'file' ? length : 0, link });
      if (members.size > MEMBERS_MAX) throw new ImageIndexError(`the tarball has more than ${MEMBERS_MAX} members: not an image as docker save writes it`);
    }
    pos = next;
  }
  return members;
}

/**
 * The regular member `path` (a manifest's path) names, following symbolic
 * links (relative to the link's directory, as docker save writes them for a
 * layer that repeats) and hard links (archive paths), never out of the archive.
 */
function resolve(members: Map<string, Member>, path: string, what: string): Member {
  let name = normalise(path);
  for (let hop = 0; hop <= LINK_HOPS_MAX; hop++) {
    const m = members.get(name);
    if (!m) throw new ImageIndexError(`${what} (${JSON.stringify(path).slice(0, 200)}) is not in the tarball`);
    if (m.type === 'file') return m;
    if (m.type !== 'symlink' && m.type !== 'hardlink') throw new ImageIndexError(`${what} (${JSON.stringify(path).slice(0, 200)}) is not a regular file in the tarball`);
    const target = m.type === 'symlink' ? (m.link.startsWith('/') ? null : normaliseMemberName(posix.join(posix.dirname(name), m.link))) : normaliseMemberName(m.link);
    if (!target) throw new ImageIndexError(`${what} (${JSON.stringify(path).slice(0, 200)}) links outside the archive (${JSON.stringify(m.link).slice(0, 200)})`);
    name = target;
  }
  throw new ImageIndexError(`${what} (${JSON.stringify(path).slice(0, 200)}) is behind more than ${LINK_HOPS_MAX} links`);
}

async function readSmall(fh: FileHandle, m: Member, what: string): Promise<Buffer> {
  if (m.size > IMAGE_INDEX_LIMITS.metadataBytesMax) throw new ImageIndexError(`${what} is implausibly large (${m.size} bytes)`);
  return readAt(fh, m.size, m.offset);
}

// ---------------------------------------------------------------- manifest and config

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new ImageIndexError(`${what} is not JSON`);
  }
}

function parseManifest(bytes: Buffer): { config: string; layers: string[] } {
  const manifest = parseJson(bytes, 'manifest.json');
  if (!Array.isArray(manifest) || manifest.length === 0) throw new ImageIndexError('manifest.json lists no image');
  if (manifest.length > 1) throw new ImageIndexError(`manifest.json lists ${manifest.length} images: only a tarball of one image is sent by layers`);
  const e = manifest[0] as { Config?: unknown; Layers?: unknown };
  if (typeof e?.Config !== 'string' || !e.Config) throw new ImageIndexError('manifest.json names no config');
  if (!Array.isArray(e.Layers) || !e.Layers.every((l): l is string => typeof l === 'string' && l.length > 0)) throw new ImageIndexError('manifest.json has no list of layer paths');
  if (e.Layers.length > IMAGE_INDEX_LIMITS.layersMax) throw new ImageIndexError(`manifest.json lists ${e.Layers.length} layers, more than ${IMAGE_INDEX_LIMITS.layersMax}`);
  return { config: e.Config, layers: e.Layers };
}

function parseDiffIds(bytes: Buffer): string[] {
  const config = parseJson(bytes, 'the config') as { rootfs?: { type?: unknown; diff_ids?: unknown } };
  const ids = config?.rootfs?.diff_ids;
  if (!Array.isArray(ids)) throw new ImageIndexError('the config has no rootfs.diff_ids');
  for (const id of ids) if (!DigestSchema.safeParse(id).success) throw new ImageIndexError(`the config's rootfs lists a layer that is not a sha256 digest: ${JSON.stringify(id).slice(0, 120)}`);
  return ids as string[];
}
