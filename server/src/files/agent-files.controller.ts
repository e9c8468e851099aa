import { Controller, Get, Headers, Param, Req, Res, StreamableFile } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import type { ImageIndex } from '@kapitan/shared';
import { Public } from '../auth/auth-user';
import { IdParamPipe } from '../common/uuid.pipe';
import { AgentDownloadsService } from './agent-downloads.service';
import { sendFileContent } from './content-response';

/** Agents fetch the bytes of what they were sent here, with their machine credential instead of a user's token. */
@ApiTags('agent')
@ApiBearerAuth()
@Controller('agent/files')
export class AgentFilesController {
  constructor(private readonly downloads: AgentDownloadsService) {}

  /** Not a user route: the global guard is skipped and the machine credential is checked by the service. */
  @Public()
  @Get(':id/content')
  content(
    @Headers('authorization') authorization: string | undefined,
    @Param('id', new IdParamPipe('file')) id: string,
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
  ): Promise<StreamableFile | undefined> {
    return sendFileContent(req, res, (range) => this.downloads.content(authorization, id, range));
  }

  /** Where manifest, config and layers lie in an image tarball, so the agent fetches only the layers its engine lacks. */
  @Public()
  @Get(':id/image-index')
  imageIndex(@Headers('authorization') authorization: string | undefined, @Param('id', new IdParamPipe('file')) id: string): Promise<ImageIndex> {
    return this.downloads.imageIndex(authorization, id);
  }
}
