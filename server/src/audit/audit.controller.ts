import { Controller, Get, Param, Query, Res, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiProduces, ApiTags } from '@nestjs/swagger';
import { AuditEvent, AuditFilter, AuditFilterSchema, AuditPage, AuditQuery, AuditQuerySchema } from '@kapitan/shared';
import type { Response } from 'express';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AuthUser, CurrentUser } from '../auth/auth-user';
import { IdParamPipe } from '../common/uuid.pipe';
import { ZodPipe } from '../common/zod-query.pipe';
import { AdminGuard } from '../invitations/admin.guard';
import { ProjectsService } from '../projects/projects.service';
import { AuditScope, AuditService } from './audit.service';

const ProjectId = () => Param('projectId', new IdParamPipe('project'));

/** One JSON object per line; a failure after the first line cuts the response short instead of sending half an error. */
async function sendNdjson(res: Response, name: string, events: AsyncIterable<AuditEvent>): Promise<void> {
  res.setHeader('Content-Type', 'application/x-ndjson; charset=utf-8');
  res.setHeader('Content-Disposition', `attachment; filename="${name}.ndjson"`);
  await pipeline(
    Readable.from(
      (async function* () {
        for await (const e of events) yield JSON.stringify(e) + '\n';
      })(),
    ),
    res,
  );
}

/**
 * Reading the log is for project owners (and their owner-role API tokens;
 * requireRole narrows a token to its role, so an operator token gets 403)
 * and, for the instance-wide events, the instance admin. There is no route
 * that writes: events come only from the interceptor.
 */
@ApiTags('audit')
@ApiBearerAuth()
@Controller()
export class AuditController {
  constructor(
    private readonly audit: AuditService,
    private readonly projects: ProjectsService,
  ) {}

  @Get('projects/:projectId/audit')
  async list(@CurrentUser() u: AuthUser, @ProjectId() projectId: string, @Query(new ZodPipe(AuditQuerySchema)) q: AuditQuery): Promise<AuditPage> {
    await this.projects.requireRole(u.userId, projectId, 'owner');
    return this.audit.page({ projectId }, q);
  }

  @Get('projects/:projectId/audit/export')
  @ApiProduces('application/x-ndjson')
  async export(
    @CurrentUser() u: AuthUser,
    @ProjectId() projectId: string,
    @Query(new ZodPipe(AuditFilterSchema)) f: AuditFilter,
    @Res() res: Response,
  ): Promise<void> {
    await this.projects.requireRole(u.userId, projectId, 'owner');
    await sendNdjson(res, `audit-${projectId}`, this.audit.all({ projectId }, f));
  }

  /** Events that belong to no project: log-ins, sign-ups, invitations, instance settings. */
  @UseGuards(AdminGuard)
  @Get('admin/audit')
  instance(@Query(new ZodPipe(AuditQuerySchema)) q: AuditQuery): Promise<AuditPage> {
    return this.audit.page(INSTANCE, q);
  }

  @UseGuards(AdminGuard)
  @Get('admin/audit/export')
  @ApiProduces('application/x-ndjson')
  async instanceExport(@Query(new ZodPipe(AuditFilterSchema)) f: AuditFilter, @Res() res: Response): Promise<void> {
    await sendNdjson(res, 'audit-instance', this.audit.all(INSTANCE, f));
  }
}

const INSTANCE: AuditScope = { instance: true };
