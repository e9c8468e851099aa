import { Body, Controller, Get, Headers, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import {
  CreateExecutionRequestSchema,
  CreateExecutionResponse,
  Execution,
  ExecutionLogQuerySchema,
  ExecutionSummary,
  ListExecutionsQuery,
  ListExecutionsQuerySchema,
} from '@kapitan/shared';
import type { Response } from 'express';
import { createZodDto } from 'nestjs-zod';
import { z } from 'zod';
import { AuthUser, CurrentUser } from '../auth/auth-user';
import { IdParamPipe } from '../common/uuid.pipe';
import { ZodPipe } from '../common/zod-query.pipe';
import { ExecutionLogService } from './execution-log.service';
import { ExecutionsService } from './executions.service';
import { Audit } from '../audit/audit.decorator';
import { runAuditDetails } from '../audit/run-details';

class CreateExecutionDto extends createZodDto(CreateExecutionRequestSchema) {}
const LogQuerySchema = ExecutionLogQuerySchema.extend({ format: z.enum(['json', 'text']).optional() });

@ApiTags('executions')
@ApiBearerAuth()
@Controller()
export class ExecutionsController {
  constructor(
    private readonly executions: ExecutionsService,
    private readonly logs: ExecutionLogService,
  ) {}

  @Audit<CreateExecutionResponse>('run.create', {
    machineId: (c) => (c.result.executions.length === 1 ? c.result.executions[0].machineId : null),
    details: (c) => runAuditDetails(c.result),
  })
  @Post('projects/:projectId/executions')
  create(
    @CurrentUser() u: AuthUser,
    @Param('projectId', new IdParamPipe('project')) projectId: string,
    @Body() body: CreateExecutionDto,
  ): Promise<CreateExecutionResponse> {
    return this.executions.create(u.userId, projectId, body);
  }

  @Get('projects/:projectId/executions')
  list(
    @CurrentUser() u: AuthUser,
    @Param('projectId', new IdParamPipe('project')) projectId: string,
    @Query(new ZodPipe(ListExecutionsQuerySchema)) q: ListExecutionsQuery,
  ): Promise<ExecutionSummary[]> {
    return this.executions.list(u.userId, projectId, q);
  }

  @Get('executions/:id')
  get(@CurrentUser() u: AuthUser, @Param('id', new IdParamPipe('execution')) id: string): Promise<Execution> {
    return this.executions.get(u.userId, id);
  }

  @Audit<ExecutionSummary>('run.cancel', { details: (c) => ({ executionId: c.result.id, runId: c.result.runId }) })
  @Post('executions/:id/cancel')
  @HttpCode(202)
  cancel(@CurrentUser() u: AuthUser, @Param('id', new IdParamPipe('execution')) id: string): Promise<ExecutionSummary> {
    return this.executions.cancel(u.userId, id);
  }

  /** JSON pages with stream markers and gaps; `Accept: text/plain` or `?format=text` streams the plain output. */
  @Get('executions/:id/log')
  async log(
    @CurrentUser() u: AuthUser,
    @Param('id', new IdParamPipe('execution')) id: string,
    @Query(new ZodPipe(LogQuerySchema)) q: z.infer<typeof LogQuerySchema>,
    @Headers('accept') accept: string | undefined,
    @Res() res: Response,
  ): Promise<void> {
    const wantsText = q.format === 'text' || (q.format === undefined && !!accept && /text\/plain/.test(accept) && !/application\/json/.test(accept));
    if (!wantsText) {
      res.json(await this.logs.log(u.userId, id, q.fromSeq, q.limit));
      return;
    }
    const text = this.logs.logText(u.userId, id);
    const first = await text.next(); // errors (404) surface before the headers go out
    res.setHeader('Content-Type', 'text/plain; charset=utf-8');
    res.setHeader('Content-Disposition', `attachment; filename="execution-${id}.log"`);
    if (!first.done) res.write(first.value);
    for await (const part of text) {
      if (!res.write(part)) await new Promise((r) => res.once('drain', r));
    }
    res.end();
  }
}
