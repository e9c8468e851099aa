import { Body, Controller, Delete, Get, HttpCode, Param, Post, Put, Query, Req, Res, StreamableFile } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiConsumes, ApiTags } from '@nestjs/swagger';
import { CompleteUploadRequestSchema, CreateUploadRequestSchema, StoredFile, Upload, UploadChunkQuerySchema } from '@kapitan/shared';
import type { Request, Response } from 'express';
import { createZodDto } from 'nestjs-zod';
import { AuthUser, CurrentUser } from '../auth/auth-user';
import { IdParamPipe } from '../common/uuid.pipe';
import { ZodPipe } from '../common/zod-query.pipe';
import { FileIngestService } from './file-ingest.service';
import { FilesService } from './files.service';
import { sendFileContent } from './content-response';
import { ResumableUploadsService } from './resumable-uploads.service';
import { Audit, NotAudited } from '../audit/audit.decorator';
import type { AuditContext } from '../audit/audit.decorator';

const fileDetails = (c: AuditContext<StoredFile>) => ({ fileId: c.result.id, name: c.result.name, kind: c.result.kind, size: c.result.size, sha256: c.result.sha256 });

class CreateUploadDto extends createZodDto(CreateUploadRequestSchema) {}
class CompleteUploadDto extends createZodDto(CompleteUploadRequestSchema) {}

const ProjectId = () => Param('projectId', new IdParamPipe('project'));
const FileId = () => Param('id', new IdParamPipe('file'));
const UploadId = () => Param('id', new IdParamPipe('upload'));

/** How long a refused upload's body is still read (and dropped) so the client gets to read the answer. */
const LINGER_MS = 2_000;

/**
 * A refused upload is answered before its body is read. `Connection: close`
 * ends the exchange; the rest of the body is read and dropped for a moment
 * (a client that is still sending may not read the answer until it can send
 * again, and an unread socket would leave it stalled for good), then the
 * connection is cut, so nobody makes the server read gigabytes it will not keep.
 */
async function closingOnError<T>(req: Request, res: Response, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (!res.headersSent) res.setHeader('Connection', 'close');
    // Held now: once the exchange is over, Node detaches the socket from the request (req.socket becomes null).
    const socket = req.socket;
    if (!req.complete && socket) {
      res.once('finish', () => {
        req.resume();
        setTimeout(() => socket.destroy(), LINGER_MS).unref();
      });
    }
    throw err;
  }
}

@ApiTags('files')
@ApiBearerAuth()
@Controller()
export class FilesController {
  constructor(
    private readonly files: FilesService,
    private readonly ingest: FileIngestService,
  ) {}

  @Get('projects/:projectId/files')
  list(@CurrentUser() u: AuthUser, @ProjectId() projectId: string): Promise<StoredFile[]> {
    return this.files.list(u.userId, projectId);
  }

  /** Streams the body to the store: multipart (kind, name?, file) or application/octet-stream with ?kind=&name=. */
  @Audit<StoredFile>('file.upload', { details: fileDetails })
  @Post('projects/:projectId/files')
  @ApiConsumes('multipart/form-data', 'application/octet-stream')
  @ApiBody({
    schema: {
      type: 'object',
      required: ['kind', 'file'],
      properties: { kind: { type: 'string', enum: ['script', 'file', 'image'] }, name: { type: 'string' }, sha256: { type: 'string' }, file: { type: 'string', format: 'binary' } },
    },
  })
  upload(@CurrentUser() u: AuthUser, @ProjectId() projectId: string, @Req() req: Request, @Res({ passthrough: true }) res: Response): Promise<StoredFile> {
    return closingOnError(req, res, () => this.ingest.upload(u.userId, projectId, req, res));
  }

  @Get('files/:id')
  get(@CurrentUser() u: AuthUser, @FileId() id: string): Promise<StoredFile> {
    return this.files.get(u.userId, id);
  }

  @Audit('file.delete', { details: (c) => ({ fileId: c.params.id }) })
  @Delete('files/:id')
  @HttpCode(204)
  delete(@CurrentUser() u: AuthUser, @FileId() id: string): Promise<void> {
    return this.files.delete(u.userId, id);
  }

  /** The bytes; one Range (`bytes=a-b`, `a-`, `-n`) → 206, an unservable one → 416. */
  @Get('files/:id/content')
  content(@CurrentUser() u: AuthUser, @FileId() id: string, @Req() req: Request, @Res({ passthrough: true }) res: Response): Promise<StreamableFile | undefined> {
    return sendFileContent(req, res, (range) => this.files.content(u.userId, id, range));
  }
}

@ApiTags('files')
@ApiBearerAuth()
@Controller()
export class UploadsController {
  constructor(private readonly uploads: ResumableUploadsService) {}

  @NotAudited('a resumable upload is recorded once it completes, as file.upload')
  @Post('projects/:projectId/uploads')
  create(@CurrentUser() u: AuthUser, @ProjectId() projectId: string, @Body() body: CreateUploadDto): Promise<Upload> {
    return this.uploads.create(u.userId, projectId, body);
  }

  @Get('uploads/:id')
  status(@CurrentUser() u: AuthUser, @UploadId() id: string): Promise<Upload> {
    return this.uploads.status(u.userId, id);
  }

  @NotAudited('a resumable upload is recorded once it completes, as file.upload')
  @Put('uploads/:id')
  @ApiConsumes('application/octet-stream')
  chunk(
    @CurrentUser() u: AuthUser,
    @UploadId() id: string,
    @Query(new ZodPipe(UploadChunkQuerySchema)) query: { offset: number },
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
  ): Promise<Upload> {
    return closingOnError(req, res, () => this.uploads.writeChunk(u.userId, id, query.offset, req, res));
  }

  @Audit<StoredFile>('file.upload', { details: fileDetails })
  @Post('uploads/:id/complete')
  complete(@CurrentUser() u: AuthUser, @UploadId() id: string, @Body() body: CompleteUploadDto): Promise<StoredFile> {
    return this.uploads.complete(u.userId, id, body);
  }

  @NotAudited('an aborted upload never became a file')
  @Delete('uploads/:id')
  @HttpCode(204)
  abort(@CurrentUser() u: AuthUser, @UploadId() id: string): Promise<void> {
    return this.uploads.abort(u.userId, id);
  }
}
