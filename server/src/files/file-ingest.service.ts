import { Inject, Injectable } from '@nestjs/common';
import { ErrorCode, FileKind, FileKindSchema, FileNameSchema, RawUploadQuerySchema, Sha256Schema, StoredFile } from '@kapitan/shared';
import busboy from 'busboy';
import type { Request, Response } from 'express';
import { Readable } from 'node:stream';
import { ZodValidationException } from 'nestjs-zod';
import { ApiException } from '../common/api-exception';
import { APP_CONFIG, AppConfig } from '../config/config';
import { BlobStore, StagedBlob, tooLarge } from './blob-store';
import { FilesService } from './files.service';
import { watchClient } from './client-watch';

const badField = (path: string, message: string) => new ApiException(400, ErrorCode.validation, `${path}: ${message}`, [{ path, message }]);

/** Thrown when the client is gone before the file could be kept; there is nobody to answer. */
export class ClientGone extends ApiException {
  constructor() {
    super(400, ErrorCode.validation, 'the connection ended before the upload was complete (or its Content-Length was wrong); nothing was kept');
  }
}

/**
 * Uploads in one request, streamed from the socket to the store: a raw body
 * (`application/octet-stream`, kind and name in the query) or multipart
 * (`kind`, then `name?`, then `file`). Nothing is buffered whole; nothing is
 * kept unless the body arrived complete and the client is still there to be
 * told the file's id.
 */
@Injectable()
export class FileIngestService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly store: BlobStore,
    private readonly files: FilesService,
  ) {}

  limitFor(kind: FileKind): number {
    return this.config.files.maxBytes[kind];
  }

  async upload(userId: string, projectId: string, req: Request, res: Response): Promise<StoredFile> {
    await this.files.requireRole(userId, projectId, 'operator');
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    const gone = watchClient(req, res);
    let result: { kind: FileKind; name: string; sha256?: string; staged: StagedBlob };
    if (type === 'application/octet-stream') result = await this.raw(req);
    else if (type === 'multipart/form-data') result = await this.multipart(req);
    else {
      throw new ApiException(415, ErrorCode.validation, 'send the file as multipart/form-data (fields kind, name?, file) or as application/octet-stream with ?kind=…&name=…', [
        { path: 'content-type', message: 'must be multipart/form-data or application/octet-stream' },
      ]);
    }
    // Content-Length shorter than the body: the parser stops at the declared length and the
    // rest is a garbage "next request" that kills the connection. Such a body is not kept.
    if (gone()) {
      await this.store.discard(result.staged.path);
      throw new ClientGone();
    }
    return this.files.create({ projectId, name: result.name, kind: result.kind, uploadedBy: userId, expectedSha256: result.sha256 }, result.staged);
  }

  private async raw(req: Request) {
    const q = RawUploadQuerySchema.safeParse(req.query);
    if (!q.success) throw new ZodValidationException(q.error);
    const limit = this.limitFor(q.data.kind);
    assertDeclaredLength(req, limit);
    const staged = await this.store.stage(req, limit);
    return { kind: q.data.kind, name: q.data.name, sha256: q.data.sha256, staged };
  }

  private multipart(req: Request): Promise<{ kind: FileKind; name: string; sha256?: string; staged: StagedBlob }> {
    let parser: busboy.Busboy;
    try {
      parser = busboy({
        headers: req.headers,
        limits: { files: 1, fields: 3, parts: 4, fieldSize: 4096, fieldNameSize: 32, headerPairs: 20 },
      });
    } catch (err) {
      return Promise.reject(badField('content-type', (err as Error).message));
    }
    return new Promise((resolve, reject) => {
      const fields: Record<string, string> = {};
      let staging: Promise<StagedBlob> | undefined;
      let failed: unknown;
      let filename: string | undefined;
      let fileStream: Readable | undefined;
      const fail = (err: unknown) => {
        if (failed) return;
        failed = err;
        req.unpipe(parser);
        // Ends the staging pipeline, which removes its temp file; a finished one is removed here.
        fileStream?.destroy(new Error('upload refused'));
        (staging ?? Promise.resolve(undefined)).then(
          (s) => (s ? this.store.discard(s.path) : undefined),
          () => undefined,
        ).finally(() => reject(err));
      };
      parser.on('field', (name, value, info) => {
        if (failed) return;
        if (info.valueTruncated) return fail(badField(name, 'is too long'));
        if (!['kind', 'name', 'sha256'].includes(name)) return fail(badField(name, 'is not a field of an upload (kind, name, sha256, file)'));
        fields[name] = value;
      });
      parser.on('file', (field, stream: Readable, info) => {
        if (failed) {
          stream.resume();
          return;
        }
        if (field !== 'file') {
          stream.resume();
          return fail(badField(field, 'the file goes in the field named "file"'));
        }
        const kind = FileKindSchema.safeParse(fields.kind);
        if (!kind.success) {
          stream.resume();
          return fail(badField('kind', 'send kind (script, file or image) before the file part'));
        }
        filename = info.filename;
        fileStream = stream;
        staging = this.store.stage(stream, this.limitFor(kind.data));
        staging.catch(fail);
      });
      parser.on('filesLimit', () => fail(badField('file', 'send one file per upload')));
      parser.on('partsLimit', () => fail(badField('(root)', 'too many parts')));
      parser.on('fieldsLimit', () => fail(badField('(root)', 'too many fields')));
      parser.on('error', (err: Error) => fail(badField('(root)', `malformed multipart body: ${err.message}`)));
      req.on('error', fail);
      req.on('close', () => {
        if (!req.complete) fail(new ClientGone());
      });
      parser.on('close', () => {
        if (failed) return;
        if (!staging) return fail(badField('file', 'is missing'));
        staging.then((staged) => {
          if (failed) return;
          const kind = FileKindSchema.parse(fields.kind);
          const name = FileNameSchema.safeParse(fields.name ?? filename ?? '');
          const sha = fields.sha256 === undefined ? undefined : Sha256Schema.safeParse(fields.sha256);
          const problem = !name.success ? badField('name', name.error.issues[0].message) : sha && !sha.success ? badField('sha256', sha.error.issues[0].message) : null;
          if (problem) {
            void this.store.discard(staged.path).finally(() => reject(problem));
            return;
          }
          resolve({ kind, name: name.data!, sha256: sha?.data, staged });
        }, fail);
      });
      const declared = Number(req.headers['content-length']);
      const largest = Math.max(...Object.values(this.config.files.maxBytes));
      // A declared body larger than any kind allows is refused before a byte is read.
      if (Number.isFinite(declared) && declared > largest + 64 * 1024) return fail(tooLarge(largest, 'the body'));
      req.pipe(parser);
    });
  }
}

function assertDeclaredLength(req: Request, limit: number): void {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) throw tooLarge(limit);
}
