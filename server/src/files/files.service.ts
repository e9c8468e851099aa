import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { ErrorCode, FileKind, ProjectRole, StoredFile } from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { Repository } from 'typeorm';
import { ApiException, notFound } from '../common/api-exception';
import { ProjectsService } from '../projects/projects.service';
import { UsersService } from '../users/users.service';
import { BlobStore, StagedBlob } from './blob-store';
import { FileEntity } from './file.entity';
import { FileReferences } from './file-references';
import { ByteRange } from './range';
import { KeyedMutex } from './keyed-mutex';

/** What a new file's row says; the bytes come as a staged blob. */
export interface NewFile {
  projectId: string;
  name: string;
  kind: FileKind;
  uploadedBy: string;
  /** The digest the client promised, if it did. */
  expectedSha256?: string;
}

/** Bytes of a stored file, ready to be sent. */
export interface FileContent {
  file: StoredFile;
  range: ByteRange | null;
  stream: Readable;
}

/**
 * The files of a project: their rows, and the rules that tie a row to its
 * blob. A row exists only for a blob that is whole on disk (inserted after the
 * rename); a blob is removed when its last row goes.
 */
@Injectable()
export class FilesService implements OnApplicationBootstrap {
  private readonly logger = new Logger(FilesService.name);
  /**
   * Serialises "commit a blob + insert its row" against "delete a row + maybe
   * remove its blob" for one digest, so a delete never removes a blob that a
   * concurrent upload just reused. Per process: several nodes sharing one store
   * leave a window of milliseconds between the refcount and the unlink.
   */
  private readonly digestLock = new KeyedMutex();

  constructor(
    @InjectRepository(FileEntity) private readonly files: Repository<FileEntity>,
    private readonly store: BlobStore,
    private readonly references: FileReferences,
    private readonly projects: ProjectsService,
    private readonly users: UsersService,
  ) {}

  /** 404 unless the caller is a member (403 below `min`). */
  requireRole(userId: string, projectId: string, min: ProjectRole): Promise<ProjectRole> {
    return this.projects.requireRole(userId, projectId, min);
  }

  async list(userId: string, projectId: string): Promise<StoredFile[]> {
    await this.projects.requireRole(userId, projectId, 'viewer');
    const rows = await this.files.find({ where: { projectId }, order: { createdAt: 'DESC', id: 'ASC' } });
    return this.toDtos(rows);
  }

  async get(userId: string, fileId: string): Promise<StoredFile> {
    return (await this.toDtos([await this.findForMember(userId, fileId, 'viewer')]))[0];
  }

  /**
   * Turns a staged blob into a visible file: its digest checked against the
   * client's promise and its content against its kind, then renamed into its
   * content address, then the row. On any refusal the staged bytes are gone.
   */
  async create(meta: NewFile, staged: StagedBlob): Promise<StoredFile> {
    try {
      if (meta.expectedSha256 && meta.expectedSha256 !== staged.sha256) {
        throw new ApiException(400, ErrorCode.validation, `the bytes received hash to ${staged.sha256}, not to the sha256 given`, [
          { path: 'sha256', message: 'does not match the content' },
        ]);
      }
      assertKindMatches(meta.kind, staged);
    } catch (err) {
      await this.store.discard(staged.path);
      throw err;
    }
    const row = this.files.create({
      id: randomUUID(),
      projectId: meta.projectId,
      name: meta.name,
      kind: meta.kind,
      size: staged.size,
      sha256: staged.sha256,
      uploadedBy: meta.uploadedBy,
      createdAt: new Date(),
    });
    await this.digestLock.run(staged.sha256, async () => {
      await this.store.commit(staged.path, staged.sha256);
      try {
        await this.files.insert(row);
      } catch (err) {
        // No row: the blob stays only if another row already owned it.
        await this.removeBlobIfUnused(staged.sha256);
        throw err;
      }
    });
    return (await this.toDtos([row]))[0];
  }

  /** Removes a file nothing still needs (409 naming what does); the blob goes with its last row. */
  async delete(userId: string, fileId: string): Promise<void> {
    const row = await this.findForMember(userId, fileId, 'operator');
    const refs = await this.references.referencesTo({ id: row.id, projectId: row.projectId, sha256: row.sha256 });
    if (refs.length) {
      throw new ApiException(409, ErrorCode.conflict, `the file is still in use by ${refs.join(', ')}; remove those first`, [
        ...refs.map((r) => ({ path: 'references', message: r })),
      ]);
    }
    await this.digestLock.run(row.sha256, async () => {
      const { affected } = await this.files.delete({ id: row.id });
      if (!affected) throw notFound('file');
      await this.removeBlobIfUnused(row.sha256);
    });
  }

  /** A member's view of the bytes, whole or one range of them. */
  async content(userId: string, fileId: string, range: (size: number) => ByteRange | null): Promise<FileContent> {
    const row = await this.findForMember(userId, fileId, 'viewer');
    return this.open(row, range(row.size));
  }

  /**
   * The bytes of a project's file with no user in the picture, for a caller
   * that has already authorised the reader (an agent downloading what it was
   * told to deploy). 404 when the file is not that project's.
   */
  async contentForProject(projectId: string, fileId: string, range: ByteRange | null = null, rangeOf?: (size: number) => ByteRange | null): Promise<FileContent> {
    const row = await this.files.findOne({ where: { id: fileId, projectId } });
    if (!row) throw notFound('file');
    return this.open(row, rangeOf ? rangeOf(row.size) : range);
  }

  /** The row of a project's file, for a feature about to reference it (a run, a deploy); 404 when it is not that project's. */
  async findInProject(projectId: string, fileId: string): Promise<StoredFile> {
    const row = await this.files.findOne({ where: { id: fileId, projectId } });
    if (!row) throw notFound('file');
    return (await this.toDtos([row]))[0];
  }

  /**
   * The whole content of a small file of the project, read into memory: a
   * script snapshotted into an execution. Refused (400 naming `fileId`) over
   * `maxBytes`, so nothing large is ever read whole.
   */
  async readSmall(projectId: string, fileId: string, maxBytes: number): Promise<{ file: StoredFile; bytes: Buffer }> {
    const row = await this.files.findOne({ where: { id: fileId, projectId } });
    if (!row) throw notFound('file');
    if (row.size > maxBytes) {
      throw new ApiException(400, ErrorCode.validation, `the file has ${row.size} bytes; at most ${maxBytes} can be used here`, [{ path: 'fileId', message: `over ${maxBytes} bytes` }]);
    }
    const { file, stream } = await this.open(row, null);
    const parts: Buffer[] = [];
    for await (const part of stream) parts.push(part as Buffer);
    return { file, bytes: Buffer.concat(parts) };
  }

  private async open(row: FileEntity, range: ByteRange | null): Promise<FileContent> {
    const [file] = await this.toDtos([row]);
    if (!(await this.store.exists(row.sha256))) {
      this.logger.error({ fileId: row.id, sha256: row.sha256 }, 'a file row has no blob');
      throw new ApiException(500, ErrorCode.internal, 'the bytes of this file are missing from the store');
    }
    const empty = row.size === 0;
    const stream = empty ? Readable.from([]) : range ? this.store.read(row.sha256, range.start, range.end) : this.store.read(row.sha256, 0, row.size - 1);
    return { file, range, stream };
  }

  private async findForMember(userId: string, fileId: string, min: ProjectRole): Promise<FileEntity> {
    const row = await this.files.findOne({ where: { id: fileId } });
    if (!row) throw notFound('file');
    try {
      await this.projects.requireRole(userId, row.projectId, min);
    } catch (err) {
      // Another project's file is one that does not exist, in the same words.
      if (err instanceof ApiException && err.getStatus() === 404) throw notFound('file');
      throw err;
    }
    return row;
  }

  /**
   * Removes blobs no row points at any more: a deleted project takes its rows
   * with it (foreign key), not its blobs. Only blobs older than `olderThanMs`,
   * so one being committed right now (renamed, row not yet inserted) is left
   * alone. Runs at start; returns the digests removed.
   */
  async sweepOrphanBlobs(olderThanMs = 3600_000): Promise<string[]> {
    const removed: string[] = [];
    for (const sha256 of await this.store.digestsOlderThan(olderThanMs)) {
      await this.digestLock.run(sha256, async () => {
        if ((await this.files.count({ where: { sha256 } })) > 0) return;
        await this.store.remove(sha256);
        removed.push(sha256);
      });
    }
    if (removed.length) this.logger.log({ removed: removed.length }, 'removed blobs no file refers to');
    return removed;
  }

  onApplicationBootstrap(): void {
    // In the background: a large store must not delay the start.
    this.sweepOrphanBlobs().catch((err) => this.logger.warn({ err }, 'could not sweep orphan blobs'));
  }

  /** Call with the digest's lock held. */
  private async removeBlobIfUnused(sha256: string): Promise<void> {
    if ((await this.files.count({ where: { sha256 } })) === 0) await this.store.remove(sha256);
  }

  private async toDtos(rows: FileEntity[]): Promise<StoredFile[]> {
    const ids = [...new Set(rows.map((r) => r.uploadedBy).filter((id): id is string => !!id))];
    const users = new Map((await this.users.findByIds(ids)).map((u) => [u.id, u]));
    return rows.map((r) => {
      const u = r.uploadedBy ? users.get(r.uploadedBy) : undefined;
      return {
        id: r.id,
        projectId: r.projectId,
        name: r.name,
        kind: r.kind,
        size: r.size,
        sha256: r.sha256,
        createdAt: r.createdAt.toISOString(),
        uploadedBy: u ? { userId: u.id, email: u.email } : null,
      };
    });
  }
}

/**
 * An image must be what `docker save` writes: a tar archive (POSIX ustar
 * magic at byte 257 of the first header). The agent loads it with
 * `docker load`; refusing anything else here saves a failed deploy later.
 */
function assertKindMatches(kind: FileKind, staged: Pick<StagedBlob, 'head' | 'size'>): void {
  if (kind !== 'image') return;
  const magic = staged.head.subarray(257, 262).toString('latin1');
  if (staged.size < 512 || magic !== 'ustar') {
    throw new ApiException(400, ErrorCode.validation, 'an image must be a tar archive as `docker save` writes it', [
      { path: 'kind', message: 'the content is not a tar archive' },
    ]);
  }
}
