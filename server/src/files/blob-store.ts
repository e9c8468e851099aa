import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { ErrorCode } from '@kapitan/shared';
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, ReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform, TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApiException } from '../common/api-exception';
import { APP_CONFIG, AppConfig } from '../config/config';
import { SyncBehindWriter } from './sync-behind-writer';

/** Bytes received into a temp file of the store, hashed on the way, not yet visible to anyone. */
export interface StagedBlob {
  path: string;
  size: number;
  sha256: string;
  /** The first 512 bytes: enough to recognise a tar archive. */
  head: Buffer;
}

export const tooLarge = (limit: number, what = 'the file') =>
  new ApiException(413, ErrorCode.payloadTooLarge, `${what} is larger than the ${limit} bytes allowed for its kind`);

export const storageFull = () =>
  new ApiException(507, ErrorCode.insufficientStorage, 'the file store is full; nothing was kept; free space or raise the volume, then retry');

/** ENOSPC (and a quota's EDQUOT) become the 507 the client can act on; anything else stays what it was. */
export function asStorageError(err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' ? storageFull() : err;
}

/** Resolves once a write stream has closed its file (at once if it has). */
export async function settled(stream: Writable): Promise<void> {
  if (stream.closed) return;
  await new Promise<void>((resolve) => stream.once('close', () => resolve()));
}

/**
 * Bytes buffered between the socket and the disk. The socket delivers 64 KiB
 * reads; with 16 KiB of room (the default) each became its own write, and
 * the dispatch of those writes cost more than hashing the bytes.
 */
export const IO_BUFFER_BYTES = 1024 * 1024;

/** Counts, hashes and keeps the head of what passes, and fails the stream past `limit` bytes. */
class Meter extends Transform {
  readonly hash = createHash('sha256');
  size = 0;
  private readonly headParts: Buffer[] = [];
  private headBytes = 0;

  constructor(private readonly limit: number) {
    // Room for the chunks that arrive while a write is in flight, so they reach the disk as one writev.
    super({ highWaterMark: IO_BUFFER_BYTES });
  }

  get head(): Buffer {
    return Buffer.concat(this.headParts);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.size += chunk.length;
    if (this.size > this.limit) return done(tooLarge(this.limit));
    if (this.headBytes < 512) {
      const part = chunk.subarray(0, 512 - this.headBytes);
      this.headParts.push(Buffer.from(part));
      this.headBytes += part.length;
    }
    this.hash.update(chunk);
    done(null, chunk);
  }
}

/**
 * The bytes of the file store, content-addressed under the files directory:
 *
 *   sha256/ab/abcdef…   one blob per distinct content, shared by every row with that digest
 *   tmp/<uuid>          an upload being received; renamed into sha256/ once complete and synced
 *   uploads/<uuid>.part a resumable upload's bytes so far
 *
 * No client-supplied string ever becomes part of a path: names are metadata,
 * paths are digests and server-made UUIDs. Everything is on one filesystem,
 * so a rename is atomic: a blob is either absent or whole.
 */
@Injectable()
export class BlobStore implements OnModuleInit {
  private readonly logger = new Logger(BlobStore.name);
  readonly dir: string;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.dir = config.files.dir;
  }

  async onModuleInit(): Promise<void> {
    for (const sub of ['sha256', 'tmp', 'uploads']) await mkdir(join(this.dir, sub), { recursive: true, mode: 0o700 });
    // Temp files of a process that died mid-upload: no row can point at them. Old ones only, another node may be receiving.
    await this.sweep(join(this.dir, 'tmp'), 3600_000);
  }

  blobPath(sha256: string): string {
    if (!/^[0-9a-f]{64}$/.test(sha256)) throw new Error(`not a sha256 digest: ${sha256}`);
    return join(this.dir, 'sha256', sha256.slice(0, 2), sha256);
  }

  uploadPath(uploadId: string): string {
    if (!/^[0-9a-f-]{36}$/.test(uploadId)) throw new Error(`not an upload id: ${uploadId}`);
    return join(this.dir, 'uploads', `${uploadId}.part`);
  }

  /**
   * Streams `source` into a new temp file: counted (over `limit` → 413), hashed,
   * synced to disk. On any failure (the client went away, the limit, a full
   * disk) the temp file is removed before the error is thrown.
   */
  async stage(source: Readable, limit: number): Promise<StagedBlob> {
    const path = join(this.dir, 'tmp', randomUUID());
    const meter = new Meter(limit);
    // Synced as it goes and at the end, so a blob that is renamed into place is on disk, not in a cache.
    const out = new SyncBehindWriter(path, { flags: 'wx', mode: 0o600, highWaterMark: IO_BUFFER_BYTES });
    try {
      await pipeline(source, meter, out);
    } catch (err) {
      // The stream opens its file asynchronously: removing it before the stream has closed could run before it exists.
      await settled(out);
      await this.discard(path);
      throw asStorageError(err);
    }
    return { path, size: meter.size, sha256: meter.hash.digest('hex'), head: meter.head };
  }

  /** The digest, size and head of a file already on disk (an assembled resumable upload). */
  async measure(path: string): Promise<Omit<StagedBlob, 'path'>> {
    const hash = createHash('sha256');
    let size = 0;
    let head = Buffer.alloc(0);
    for await (const chunk of createReadStream(path, { highWaterMark: IO_BUFFER_BYTES }) as AsyncIterable<Buffer>) {
      if (head.length < 512) head = Buffer.concat([head, chunk.subarray(0, 512 - head.length)]);
      hash.update(chunk);
      size += chunk.length;
    }
    return { size, sha256: hash.digest('hex'), head };
  }

  /**
   * Makes `path` (in this store's directory) the blob of `sha256`. Renaming
   * over an existing blob replaces identical bytes with identical bytes, so
   * de-duplication needs no check, and a reader never sees half a blob.
   */
  async commit(path: string, sha256: string): Promise<void> {
    const target = this.blobPath(sha256);
    await mkdir(join(this.dir, 'sha256', sha256.slice(0, 2)), { recursive: true, mode: 0o700 });
    try {
      await rename(path, target);
      await this.syncDir(join(this.dir, 'sha256', sha256.slice(0, 2)));
    } catch (err) {
      await this.discard(path);
      throw asStorageError(err);
    }
  }

  async exists(sha256: string): Promise<boolean> {
    return stat(this.blobPath(sha256)).then(
      () => true,
      () => false,
    );
  }

  /** Bytes `start`..`end` (inclusive) of a blob. */
  read(sha256: string, start: number, end: number): ReadStream {
    return createReadStream(this.blobPath(sha256), { start, end });
  }

  async remove(sha256: string): Promise<void> {
    await unlink(this.blobPath(sha256)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  /** Digests of the blobs last modified over `olderThanMs` ago. */
  async digestsOlderThan(olderThanMs: number): Promise<string[]> {
    const out: string[] = [];
    const root = join(this.dir, 'sha256');
    for (const prefix of await readdir(root).catch(() => [] as string[])) {
      for (const name of await readdir(join(root, prefix)).catch(() => [] as string[])) {
        if (!/^[0-9a-f]{64}$/.test(name)) continue;
        const s = await stat(join(root, prefix, name)).catch(() => null);
        if (s && Date.now() - s.mtimeMs >= olderThanMs) out.push(name);
      }
    }
    return out;
  }

  async discard(path: string): Promise<void> {
    await rm(path, { force: true }).catch((err) => this.logger.warn({ err, path }, 'could not remove a temp file'));
  }

  /** Free bytes for an unprivileged writer on the store's filesystem. */
  async freeBytes(): Promise<number> {
    const s = await statfs(this.dir);
    return s.bavail * s.bsize;
  }

  private async syncDir(dir: string): Promise<void> {
    const fd = await open(dir, 'r');
    try {
      await fd.sync();
    } finally {
      await fd.close();
    }
  }

  private async sweep(dir: string, olderThanMs: number): Promise<void> {
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const p = join(dir, name);
      const s = await stat(p).catch(() => null);
      if (s && Date.now() - s.mtimeMs > olderThanMs) await this.discard(p);
    }
  }
}
