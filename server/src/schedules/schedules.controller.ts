import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import {
  CreateScheduleRequestSchema,
  ListOccurrencesQuery,
  ListOccurrencesQuerySchema,
  Occurrence,
  Schedule,
  UpdateScheduleRequest,
  UpdateScheduleRequestSchema,
} from '@kapitan/shared';
import { createZodDto } from 'nestjs-zod';
import { AuthUser, CurrentUser } from '../auth/auth-user';
import { IdParamPipe } from '../common/uuid.pipe';
import { ZodPipe } from '../common/zod-query.pipe';
import { SchedulesService } from './schedules.service';
import { Audit } from '../audit/audit.decorator';

class CreateScheduleDto extends createZodDto(CreateScheduleRequestSchema) {}
class UpdateScheduleDto extends createZodDto(UpdateScheduleRequestSchema) {}

@ApiTags('schedules')
@ApiBearerAuth()
@Controller()
export class SchedulesController {
  constructor(private readonly schedules: SchedulesService) {}

  @Audit<Schedule>('schedule.create', { details: (c) => ({ scheduleId: c.result.id, name: c.result.name }) })
  @Post('projects/:projectId/schedules')
  create(@CurrentUser() u: AuthUser, @Param('projectId', new IdParamPipe('project')) projectId: string, @Body() body: CreateScheduleDto): Promise<Schedule> {
    return this.schedules.create(u.userId, projectId, body);
  }

  @Get('projects/:projectId/schedules')
  list(@CurrentUser() u: AuthUser, @Param('projectId', new IdParamPipe('project')) projectId: string): Promise<Schedule[]> {
    return this.schedules.list(u.userId, projectId);
  }

  @Get('schedules/:id')
  get(@CurrentUser() u: AuthUser, @Param('id', new IdParamPipe('schedule')) id: string): Promise<Schedule> {
    return this.schedules.get(u.userId, id);
  }

  @Audit<Schedule>('schedule.update', { details: (c) => ({ scheduleId: c.result.id, name: c.result.name, fields: Object.keys(c.body) }) })
  @Patch('schedules/:id')
  update(@CurrentUser() u: AuthUser, @Param('id', new IdParamPipe('schedule')) id: string, @Body() body: UpdateScheduleDto): Promise<Schedule> {
    return this.schedules.update(u.userId, id, body as UpdateScheduleRequest);
  }

  @Audit('schedule.delete', { details: (c) => ({ scheduleId: c.params.id }) })
  @Delete('schedules/:id')
  @HttpCode(204)
  delete(@CurrentUser() u: AuthUser, @Param('id', new IdParamPipe('schedule')) id: string): Promise<void> {
    return this.schedules.delete(u.userId, id);
  }

  @Audit<Schedule>('schedule.pause', { details: (c) => ({ scheduleId: c.result.id, name: c.result.name }) })
  @Post('schedules/:id/pause')
  @HttpCode(200)
  pause(@CurrentUser() u: AuthUser, @Param('id', new IdParamPipe('schedule')) id: string): Promise<Schedule> {
    return this.schedules.setEnabled(u.userId, id, false);
  }

  @Audit<Schedule>('schedule.resume', { details: (c) => ({ scheduleId: c.result.id, name: c.result.name }) })
  @Post('schedules/:id/resume')
  @HttpCode(200)
  resume(@CurrentUser() u: AuthUser, @Param('id', new IdParamPipe('schedule')) id: string): Promise<Schedule> {
    return this.schedules.setEnabled(u.userId, id, true);
  }

  @Get('schedules/:id/occurrences')
  occurrences(
    @CurrentUser() u: AuthUser,
    @Param('id', new IdParamPipe('schedule')) id: string,
    @Query(new ZodPipe(ListOccurrencesQuerySchema)) q: ListOccurrencesQuery,
  ): Promise<Occurrence[]> {
    return this.schedules.occurrences(u.userId, id, q);
  }
}
