/**
 * Upload a file through the resumable protocol, whatever its size: each
 * chunk is its own request (so a proxy that caps requests at 100 MB is no
 * obstacle), a failed chunk is retried from the offset the server reports,
 * and the sha256 the CLI computed is checked by the server before the file
 * exists for anyone.
 */
import { createHash } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import * as path from 'node:path';
import type { FileKind, StoredFile, Upload } from '../files';
import { Api, ApiFailure, isTransient } from './api';
import { ProgressBar, type ProgressSink } from './progress';

export interface UploadOptions {
  projectId: string;
  file: string;
  kind: FileKind;
  name?: string;
  /** Attempts per chunk before giving up (network errors, 429, 5xx). */
  retries?: number;
  progress?: ProgressSink;
  /** Waits between attempts; tests shorten it. */
  backoffMs?: (attempt: number) => number;
}

const defaultBackoff = (attempt: number) => Math.min(30_000, 500 * 2 ** attempt);

export async function uploadFile(api: Api, options: UploadOptions): Promise<StoredFile> {
  const { size } = await stat(options.file);
  const name = options.name ?? path.basename(options.file);
  const upload = await api.request<Upload>('POST', `/projects/${options.projectId}/uploads`, { kind: options.kind, name, size });
  const fh = await open(options.file, 'r');
  const bar = options.progress ? new ProgressBar(name, size, options.progress) : undefined;
  const hash = createHash('sha256');
  const retries = options.retries ?? 6;
  const backoff = options.backoffMs ?? defaultBackoff;
  let offset = 0;
  try {
    bar?.update(0);
    while (offset < size) {
      const length = Math.min(upload.chunkMaxBytes, size - offset);
      const chunk = Buffer.allocUnsafe(length);
      const { bytesRead } = await fh.read(chunk, 0, length, offset);
      if (bytesRead !== length) throw new Error(`${options.file} changed while uploading (short read at ${offset})`);
      offset = await sendChunk(api, upload.id, offset, chunk, retries, backoff);
      // The server holds either none or all of a chunk, so only whole chunks are hashed, in order.
      hash.update(chunk);
      bar?.update(offset);
    }
    const sha256 = hash.digest('hex');
    const stored = await api.request<StoredFile>('POST', `/uploads/${upload.id}/complete`, { sha256 });
    bar?.finish(`sha256 ${sha256}`);
    return stored;
  } catch (err) {
    bar?.finish('failed');
    // An upload that cannot finish should not hold the project's quota of open uploads for a day.
    await api.request('DELETE', `/uploads/${upload.id}`).catch(() => undefined);
    throw err;
  } finally {
    await fh.close();
  }
}

/** Sends the chunk at `offset` until the server holds it; resolves with the new offset. */
async function sendChunk(api: Api, uploadId: string, offset: number, chunk: Buffer, retries: number, backoff: (n: number) => number): Promise<number> {
  const end = offset + chunk.length;
  for (let attempt = 0; ; attempt++) {
    try {
      const after = await api.request<Upload>('PUT', `/uploads/${uploadId}?offset=${offset}`, undefined, chunk);
      return after.offset;
    } catch (err) {
      const conflict = err instanceof ApiFailure && err.status === 409;
      if (!conflict && (!isTransient(err) || attempt >= retries)) throw err;
      if (!conflict) await new Promise((r) => setTimeout(r, backoff(attempt)));
      // Where does the server stand? A lost answer may hide a chunk that did land.
      const state = await api.request<Upload>('GET', `/uploads/${uploadId}`).catch((e) => {
        if (isTransient(e)) return undefined;
        throw e;
      });
      if (!state) continue;
      if (state.offset === end) return end;
      if (state.offset !== offset) throw new Error(`the server holds ${state.offset} bytes of this upload where ${offset} or ${end} was expected; start the upload again`);
      if (conflict) {
        // Another request still writes this upload (a timed-out attempt of ours); wait for it.
        if (attempt >= retries) throw err;
        await new Promise((r) => setTimeout(r, backoff(attempt)));
      }
    }
  }
}
