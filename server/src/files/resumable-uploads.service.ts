import { Inject, Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { CompleteUploadRequest, CreateUploadRequestSchema, ErrorCode, FILE_LIMITS, StoredFile, Upload } from '@kapitan/shared';
import type { Request, Response } from 'express';
import { createHash, Hash, randomUUID } from 'node:crypto';
import { open, stat, truncate } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { IsNull, LessThan, Repository } from 'typeorm';
import type { z } from 'zod';
import { ApiException, notFound } from '../common/api-exception';
import { APP_CONFIG, AppConfig } from '../config/config';
import { asStorageError, BlobStore, IO_BUFFER_BYTES, settled, StagedBlob, storageFull, tooLarge } from './blob-store';
import { FileUploadEntity } from './file.entity';
import { ClientGone } from './file-ingest.service';
import { FilesService } from './files.service';
import { watchClient } from './client-watch';
import { SyncBehindWriter } from './sync-behind-writer';

/** Running digests kept per node; past this the oldest is forgotten (its upload is hashed from disk at the end). */
const RUNNING_HASHES_MAX = 1000;

/** How long one chunk request may hold its upload's claim before another may take over (a node died mid-chunk). */
const CLAIM_MS = 10 * 60_000;

const offsetConflict = (received: number, why: string) =>
  new ApiException(409, ErrorCode.conflict, `${why}; the upload has ${received} bytes, send the chunk at offset ${received}`, [
    { path: 'offset', message: `expected ${received}` },
  ], { 'Upload-Offset': String(received) });

/**
 * Resumable uploads in chunks of at most FILE_LIMITS.chunkMaxBytes, each its
 * own request, so a multi-GB image passes a proxy that caps one request at
 * 100 MB and a broken connection costs one chunk, not the whole file.
 *
 *   POST   /api/projects/:projectId/uploads {kind, name, size, sha256?} → 201 Upload (offset 0)
 *   PUT    /api/uploads/:id?offset=N  (application/octet-stream)       → 200 Upload (the new offset)
 *   GET    /api/uploads/:id                                             → 200 Upload (where to resume)
 *   POST   /api/uploads/:id/complete {sha256?}                          → 201 StoredFile
 *   DELETE /api/uploads/:id                                             → 204
 *
 * Chunks go strictly in order: a chunk whose offset is not the upload's
 * current size (a replay, out of order, overlapping) is refused with 409 and
 * `Upload-Offset`, changing nothing, so replays are harmless. One chunk at a
 * time per upload: a database claim decides, so this holds across nodes
 * sharing the store. The server hashes the assembled bytes at `complete`
 * and checks them against the digest the client gave (if any) before the
 * file exists for anyone. An upload is its creator's alone: anyone else gets 404.
 */
@Injectable()
export class ResumableUploadsService {
  private readonly logger = new Logger(ResumableUploadsService.name);
  /**
   * The digest of each upload so far, as this node wrote its chunks, so that
   * `complete` need not read the whole file back. Only a chunk that landed
   * whole advances it; when another node wrote a chunk (or this one restarted)
   * the offsets no longer meet and `complete` hashes what is on disk instead.
   */
  private readonly running = new Map<string, { offset: number; hash: Hash; head: Buffer }>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @InjectRepository(FileUploadEntity) private readonly uploads: Repository<FileUploadEntity>,
    private readonly store: BlobStore,
    private readonly files: FilesService,
  ) {}

  async create(userId: string, projectId: string, body: z.output<typeof CreateUploadRequestSchema>): Promise<Upload> {
    await this.files.requireRole(userId, projectId, 'operator');
    const limit = this.config.files.maxBytes[body.kind];
    if (body.size > limit) throw tooLarge(limit);
    await this.sweepExpired();
    // Refused now rather than after hours of chunks: the space is not reserved, but a file that cannot fit is told at once.
    if (body.size > (await this.store.freeBytes())) throw storageFull();
    const unfinished = await this.uploads.count({ where: { userId, projectId } });
    if (unfinished >= FILE_LIMITS.openUploadsPerUserMax) {
      throw new ApiException(409, ErrorCode.conflict, `you have ${unfinished} unfinished uploads in this project; complete or delete one first`);
    }
    const now = new Date();
    const row = this.uploads.create({
      id: randomUUID(),
      projectId,
      userId,
      name: body.name,
      kind: body.kind,
      size: body.size,
      received: 0,
      sha256: body.sha256 ?? null,
      lockedUntil: null,
      createdAt: now,
      expiresAt: new Date(now.getTime() + FILE_LIMITS.uploadTtlSeconds * 1000),
    });
    const fd = await open(this.store.uploadPath(row.id), 'wx', 0o600).catch((err) => {
      throw asStorageError(err);
    });
    await fd.close();
    try {
      await this.uploads.insert(row);
    } catch (err) {
      await this.store.discard(this.store.uploadPath(row.id));
      throw err;
    }
    return this.toDto(row);
  }

  async status(userId: string, uploadId: string): Promise<Upload> {
    return this.toDto(await this.findOwn(userId, uploadId));
  }

  /** Appends one chunk at `offset`; nothing changes unless all of it arrived and is on disk. */
  async writeChunk(userId: string, uploadId: string, offset: number, req: Request, res: Response): Promise<Upload> {
    const row = await this.findOwn(userId, uploadId);
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/octet-stream') {
      throw new ApiException(415, ErrorCode.validation, 'a chunk is sent as application/octet-stream', [
        { path: 'content-type', message: 'must be application/octet-stream' },
      ]);
    }
    if (offset !== row.received) throw offsetConflict(row.received, `a chunk at offset ${offset} does not continue the upload`);
    const room = Math.min(FILE_LIMITS.chunkMaxBytes, row.size - offset);
    const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
    if (declared !== undefined && declared > room) throw chunkTooLarge(room, row.size - offset);

    await this.claim(row, offset);
    const gone = watchClient(req, res);
    const path = this.store.uploadPath(row.id);
    let written = 0;
    let out: SyncBehindWriter | undefined;
    const before = this.running.get(row.id);
    const hash = before?.offset === offset ? before.hash.copy() : offset === 0 ? createHash('sha256') : undefined;
    let head = before?.head ?? Buffer.alloc(0);
    try {
      const limiter = new Transform({
        highWaterMark: IO_BUFFER_BYTES,
        transform(chunk: Buffer, _enc, done) {
          written += chunk.length;
          if (written > room) return done(chunkTooLarge(room, row.size - offset));
          hash?.update(chunk);
          if (head.length < 512) head = Buffer.concat([head, chunk.subarray(0, 512 - head.length)]);
          done(null, chunk);
        },
      });
      // r+ at `start`: the bytes land exactly at the claimed offset, so a chunk retried after a crash overwrites, never appends twice.
      // Synced as it goes and at the end: the 200 that follows means the chunk is on disk.
      out = new SyncBehindWriter(path, { flags: 'r+', start: offset, highWaterMark: IO_BUFFER_BYTES });
      await pipeline(req, limiter, out);
      if (gone()) throw new ClientGone();
    } catch (err) {
      // Writes still in flight would land after the truncate.
      if (out) await settled(out);
      await truncate(path, offset).catch((e) => this.logger.warn({ err: e, uploadId }, 'could not cut a failed chunk off'));
      await this.uploads.update({ id: row.id, received: offset }, { lockedUntil: null });
      throw asStorageError(err);
    }
    const { affected } = await this.uploads.update({ id: row.id, received: offset }, { received: offset + written, lockedUntil: null });
    if (!affected) throw notFound('upload'); // deleted while the chunk was written
    row.received = offset + written;
    this.running.delete(row.id);
    if (hash) {
      this.running.set(row.id, { offset: row.received, hash, head });
      if (this.running.size > RUNNING_HASHES_MAX) this.running.delete(this.running.keys().next().value!);
    }
    return this.toDto(row);
  }

  /** Hashes what was assembled, checks it, and turns it into a file of the project. */
  async complete(userId: string, uploadId: string, body: CompleteUploadRequest & { sha256?: string }): Promise<StoredFile> {
    const row = await this.findOwn(userId, uploadId);
    if (row.received !== row.size) throw offsetConflict(row.received, `the upload has ${row.received} of its ${row.size} bytes`);
    if (body.sha256 && row.sha256 && body.sha256 !== row.sha256) {
      throw new ApiException(400, ErrorCode.validation, 'the sha256 given differs from the one the upload was created with', [
        { path: 'sha256', message: 'differs from the upload\'s' },
      ]);
    }
    await this.claim(row, row.size);
    const path = this.store.uploadPath(row.id);
    try {
      const measured = await this.measured(row.id, path, row.size);
      if (measured.size !== row.size) {
        throw new ApiException(409, ErrorCode.conflict, `the assembled upload has ${measured.size} bytes on disk, not ${row.size}; start it again`);
      }
      const file = await this.files.create(
        { projectId: row.projectId, name: row.name, kind: row.kind, uploadedBy: userId, expectedSha256: body.sha256 ?? row.sha256 ?? undefined },
        { path, ...measured },
      );
      await this.uploads.delete({ id: row.id });
      return file;
    } catch (err) {
      // A refused assembly (wrong digest, not a tar for an image) is dropped whole: its bytes are not what was meant.
      await this.drop(row.id);
      throw err;
    }
  }

  /** Size, digest and head of the assembled upload: from the running digest when this node saw every chunk, else read from disk. */
  private async measured(uploadId: string, path: string, size: number): Promise<Omit<StagedBlob, 'path'>> {
    const r = this.running.get(uploadId);
    this.running.delete(uploadId);
    if (r && r.offset === size) {
      const onDisk = (await stat(path)).size;
      if (onDisk === size) return { size, sha256: r.hash.digest('hex'), head: r.head };
    }
    return this.store.measure(path);
  }

  async abort(userId: string, uploadId: string): Promise<void> {
    const row = await this.findOwn(userId, uploadId);
    await this.drop(row.id);
  }

  private async drop(uploadId: string): Promise<void> {
    this.running.delete(uploadId);
    await this.uploads.delete({ id: uploadId });
    await this.store.discard(this.store.uploadPath(uploadId));
  }

  /** Takes the upload's one-writer claim at `received`, or explains (409) why not. */
  private async claim(row: FileUploadEntity, received: number): Promise<void> {
    const now = new Date();
    const until = new Date(now.getTime() + CLAIM_MS);
    const free = await this.uploads.update({ id: row.id, received, lockedUntil: IsNull() }, { lockedUntil: until });
    if (free.affected) return;
    const stale = await this.uploads.update({ id: row.id, received, lockedUntil: LessThan(now) }, { lockedUntil: until });
    if (stale.affected) return;
    const fresh = await this.uploads.findOne({ where: { id: row.id } });
    if (!fresh) throw notFound('upload');
    if (fresh.received !== received) throw offsetConflict(fresh.received, `a chunk at offset ${received} does not continue the upload`);
    throw new ApiException(409, ErrorCode.conflict, 'another request is writing this upload; wait for it, then resume at its offset', [
      { path: 'offset', message: 'a chunk is in flight' },
    ]);
  }

  private async findOwn(userId: string, uploadId: string): Promise<FileUploadEntity> {
    const row = await this.uploads.findOne({ where: { id: uploadId } });
    if (!row || row.userId !== userId || row.expiresAt.getTime() < Date.now()) throw notFound('upload');
    try {
      // Still an operator of the project: a member removed meanwhile cannot finish.
      await this.files.requireRole(userId, row.projectId, 'operator');
    } catch (err) {
      if (err instanceof ApiException && err.getStatus() === 404) throw notFound('upload');
      throw err;
    }
    return row;
  }

  private async sweepExpired(): Promise<void> {
    const expired = await this.uploads.find({ where: { expiresAt: LessThan(new Date()) }, take: 100 });
    for (const u of expired) await this.drop(u.id);
  }

  private toDto(row: FileUploadEntity): Upload {
    return {
      id: row.id,
      projectId: row.projectId,
      name: row.name,
      kind: row.kind,
      size: row.size,
      offset: row.received,
      chunkMaxBytes: FILE_LIMITS.chunkMaxBytes,
      expiresAt: row.expiresAt.toISOString(),
    };
  }
}

function chunkTooLarge(room: number, left: number): ApiException {
  return new ApiException(413, ErrorCode.payloadTooLarge, `a chunk here may hold at most ${room} bytes (${left} left of the upload, ${FILE_LIMITS.chunkMaxBytes} per chunk)`);
}
