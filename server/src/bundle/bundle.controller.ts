import { Body, Controller, Get, Param, Post, Query, Res, StreamableFile } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { BundleQuerySchema, CreateInstallLinkRequestSchema, ErrorCode, InstallLink } from '@kapitan/shared';
import type { Response } from 'express';
import { createZodDto } from 'nestjs-zod';
import { Audit } from '../audit/audit.decorator';
import { AuthUser, CurrentUser, Public } from '../auth/auth-user';
import { ApiException } from '../common/api-exception';
import { IdParamPipe } from '../common/uuid.pipe';
import { BundleService, type AgentForm } from './bundle.service';

class BundleQueryDto extends createZodDto(BundleQuerySchema) {}
class CreateInstallLinkDto extends createZodDto(CreateInstallLinkRequestSchema) {}

const ProjectId = () => Param('projectId', new IdParamPipe('project'));

@ApiTags('bundle')
@ApiBearerAuth()
@Controller('projects/:projectId')
export class BundleController {
  constructor(private readonly bundles: BundleService) {}

  /** A zip to install the agent from, with a fresh enrolment token in it (listed as the bundle's). A GET that mints a credential, so it is audited. */
  @Get('bundle')
  @Audit('enrolment_token.create', { details: (c) => ({ purpose: 'bundle', maxUses: (c.query.maxUses as string | undefined) ?? null, ttlHours: (c.query.ttlHours as string | undefined) ?? null }) })
  async bundle(
    @CurrentUser() u: AuthUser,
    @ProjectId() projectId: string,
    @Query() query: BundleQueryDto,
    @Res({ passthrough: true }) res: Response,
  ): Promise<StreamableFile> {
    const b = await this.bundles.bundle(u.userId, projectId, query);
    res.setHeader('Cache-Control', 'no-store');
    return new StreamableFile(b.stream, { type: 'application/zip', disposition: `attachment; filename="${b.fileName}"` });
  }

  @Post('install-links')
  @Audit<InstallLink>('enrolment_token.create', { details: (c) => ({ purpose: 'install-link', tokenId: c.result?.token.id ?? null }) })
  createInstallLink(@CurrentUser() u: AuthUser, @ProjectId() projectId: string, @Body() body: CreateInstallLinkDto): Promise<InstallLink> {
    return this.bundles.createInstallLink(u.userId, projectId, body);
  }
}

/**
 * The one-line install, fetched by curl on a machine with no account: the
 * single-use token in the path is the credential, as in enrolment.
 */
@ApiTags('bundle')
@Controller('install')
export class InstallController {
  constructor(private readonly bundles: BundleService) {}

  @Public()
  @Get(':script')
  async script(@Param('script') script: string, @Res({ passthrough: true }) res: Response): Promise<string> {
    if (!script.endsWith('.sh')) throw notFound();
    const text = await this.bundles.installScript(script.slice(0, -'.sh'.length));
    // Set here, not by decorator, so an error keeps the JSON error shape.
    res.setHeader('Content-Type', 'text/x-shellscript; charset=utf-8');
    res.setHeader('Cache-Control', 'no-store');
    return text;
  }

  @Public()
  @Get(':token/agent/:form')
  async agent(@Param('token') token: string, @Param('form') form: string, @Res({ passthrough: true }) res: Response): Promise<StreamableFile> {
    if (form !== 'exe' && form !== 'cjs') throw notFound();
    const a = await this.bundles.installAgent(token, form as AgentForm);
    res.setHeader('Cache-Control', 'no-store');
    return new StreamableFile(a.stream, { type: 'application/octet-stream', length: a.size });
  }
}

function notFound(): ApiException {
  return new ApiException(404, ErrorCode.notFound, 'not found');
}
