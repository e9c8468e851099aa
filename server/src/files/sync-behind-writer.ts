import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { Writable } from 'node:stream';

/** Bytes written between two background syncs: about what the final fsync may still have to flush. */
export const SYNC_BEHIND_BYTES = 4 * 1024 * 1024;

export interface SyncBehindOptions {
  /** `open` flags: `wx` for a new file, `r+` to write into one at `start`. */
  flags: 'wx' | 'r+';
  start?: number;
  mode?: number;
  highWaterMark?: number;
}

/**
 * A file write stream that is durable when it finishes, like
 * `createWriteStream(…, { flush: true })`, but that asks the disk for what it
 * has written every SYNC_BEHIND_BYTES while more is still arriving.
 *
 * Why: the page cache keeps a 16 MiB chunk of a resumable upload in memory
 * until its final fsync (writeback starts only at gigabytes of dirty data on
 * a machine with memory), so each chunk's answer waited for its whole write
 * to the disk, and the next chunk for that answer. Syncing behind the
 * writes lets the disk work while the network brings the rest: the last
 * sync has at most a few MiB left. The syncs run on libuv's pool beside the
 * writes; one at a time.
 *
 * The file is opened by the stream and closed when it is destroyed (after
 * any sync in flight), so `close` means nothing touches it any more.
 */
export class SyncBehindWriter extends Writable {
  private handle: FileHandle | null = null;
  private position: number;
  private unsynced = 0;
  private syncing: Promise<void> | null = null;
  private syncError: unknown = null;

  constructor(
    private readonly path: string,
    private readonly options: SyncBehindOptions,
  ) {
    super({ highWaterMark: options.highWaterMark });
    this.position = options.start ?? 0;
  }

  /** Bytes written into the file by this stream. */
  get bytesWritten(): number {
    return this.position - (this.options.start ?? 0);
  }

  override _construct(callback: (err?: Error | null) => void): void {
    open(this.path, this.options.flags, this.options.mode ?? 0o600).then(
      (h) => {
        this.handle = h;
        callback();
      },
      (err: Error) => callback(err),
    );
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.writeAll([chunk]).then(() => callback(), (err: Error) => callback(err));
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (err?: Error | null) => void): void {
    this.writeAll(chunks.map((c) => c.chunk)).then(() => callback(), (err: Error) => callback(err));
  }

  override _final(callback: (err?: Error | null) => void): void {
    (async () => {
      await this.syncing;
      if (this.syncError) throw this.syncError;
      await this.handle!.sync();
    })().then(() => callback(), (err: Error) => callback(err));
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const handle = this.handle;
    this.handle = null;
    (async () => {
      await this.syncing;
      await handle?.close();
    })().then(() => callback(err), (closeErr: Error) => callback(err ?? closeErr));
  }

  private async writeAll(buffers: Buffer[]): Promise<void> {
    if (this.syncError) throw this.syncError;
    const handle = this.handle!;
    let pending = buffers;
    while (pending.length) {
      const { bytesWritten } = await handle.writev(pending, this.position);
      this.position += bytesWritten;
      this.unsynced += bytesWritten;
      pending = afterWritten(pending, bytesWritten);
    }
    if (this.unsynced >= SYNC_BEHIND_BYTES && !this.syncing) {
      this.unsynced = 0;
      // Not awaited: the next writes go on meanwhile. A failure fails the next write or the end.
      this.syncing = handle.datasync().then(
        () => {
          this.syncing = null;
        },
        (err: unknown) => {
          this.syncError ??= err;
          this.syncing = null;
        },
      );
    }
  }
}

/** What is left of `buffers` once `written` bytes of them are on disk (a short write is rare on a file, not impossible). */
function afterWritten(buffers: Buffer[], written: number): Buffer[] {
  let skip = written;
  let i = 0;
  while (i < buffers.length && skip >= buffers[i].length) skip -= buffers[i++].length;
  if (i === buffers.length) return [];
  return [buffers[i].subarray(skip), ...buffers.slice(i + 1)];
}
