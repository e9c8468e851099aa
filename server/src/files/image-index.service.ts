import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { ImageIndexSchema, type ImageIndex } from '@kapitan/shared';
import { open } from 'node:fs/promises';
import { Repository } from 'typeorm';
import { notFound } from '../common/api-exception';
import { BlobStore } from './blob-store';
import { FileEntity } from './file.entity';
import { ImageIndexEntity } from './image-index.entity';
import { ImageIndexError, indexImageTarball } from './image-index';

/**
 * The layer indexes of image files (image-index.ts), built lazily on a
 * file's first distribution — files stored before this existed get one the
 * same way — and kept while the file's row is. A tarball that cannot be
 * indexed keeps nothing: it is sent whole, and the agent's `docker load`
 * says what is wrong with it, as before.
 */
@Injectable()
export class ImageIndexService {
  private readonly logger = new Logger(ImageIndexService.name);

  constructor(
    @InjectRepository(ImageIndexEntity) private readonly indexes: Repository<ImageIndexEntity>,
    @InjectRepository(FileEntity) private readonly files: Repository<FileEntity>,
    private readonly store: BlobStore,
  ) {}

  /** The stored index of a project's image file, or null when it has none. */
  async find(projectId: string, fileId: string): Promise<ImageIndex | null> {
    const file = await this.files.findOne({ where: { id: fileId, projectId }, select: ['id'] });
    if (!file) return null;
    const row = await this.indexes.findOne({ where: { fileId } });
    if (!row) return null;
    const parsed = ImageIndexSchema.safeParse(JSON.parse(row.body));
    return parsed.success ? parsed.data : null;
  }

  /**
   * Indexes a project's image file now (again, if it had an index) and
   * stores the result. Throws ImageIndexError (nothing stored) when the
   * tarball cannot be sent by layers.
   */
  async build(projectId: string, fileId: string): Promise<ImageIndex> {
    const file = await this.files.findOne({ where: { id: fileId, projectId } });
    if (!file) throw notFound('file');
    if (file.kind !== 'image') throw new ImageIndexError(`file ${file.name} is of kind ${file.kind}, not an image`);
    const fh = await open(this.store.blobPath(file.sha256), 'r');
    let index: ImageIndex;
    try {
      index = await indexImageTarball(fh, { id: file.id, sha256: file.sha256, size: file.size });
    } finally {
      await fh.close();
    }
    // Two distributions of one new file at once index it twice, to the same result: the second write is harmless.
    await this.indexes.upsert({ fileId, sha256: file.sha256, layers: index.layers.length, body: JSON.stringify(index), createdAt: new Date() }, ['fileId']);
    return index;
  }

  /** The file's index, built if it has none yet; null (and a log line with the reason) when it cannot have one. */
  async ensure(projectId: string, fileId: string): Promise<ImageIndex | null> {
    const known = await this.find(projectId, fileId);
    if (known) return known;
    try {
      return await this.build(projectId, fileId);
    } catch (err) {
      // The index only saves bytes: whatever stops it, the distribution still goes, whole.
      if (err instanceof ImageIndexError) this.logger.warn({ fileId, reason: err.message }, 'image tarball not indexed: it will be sent whole');
      else this.logger.error({ fileId, err: String(err) }, 'could not index an image tarball: it will be sent whole');
      return null;
    }
  }
}
