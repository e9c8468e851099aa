import { Controller, Get, Param, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { MetricsQuerySchema, type ContainerMetricsResponse, type MachineMetricsResponse, type ProjectCpuResponse } from '@kapitan/shared';
import type { z } from 'zod';
import { AuthUser, CurrentUser } from '../auth/auth-user';
import { IdParamPipe } from '../common/uuid.pipe';
import { ZodPipe } from '../common/zod-query.pipe';
import { MetricsService } from './metrics.service';

type Query = z.output<typeof MetricsQuerySchema>;
const MachineId = () => Param('machineId', new IdParamPipe('machine'));

@ApiTags('metrics')
@ApiBearerAuth()
@Controller()
export class MetricsController {
  constructor(private readonly metrics: MetricsService) {}

  /** Host metrics of a machine: `from`/`to` ISO times (default the last hour), `resolution` raw | 1m | 1h | auto. */
  @Get('machines/:machineId/metrics')
  host(@CurrentUser() u: AuthUser, @MachineId() machineId: string, @Query(new ZodPipe(MetricsQuerySchema)) q: Query): Promise<MachineMetricsResponse> {
    return this.metrics.machineMetrics(u.userId, machineId, q);
  }

  /** Container metrics of a machine, one series per container (or only `containerId`'s). */
  @Get('machines/:machineId/metrics/containers')
  containers(@CurrentUser() u: AuthUser, @MachineId() machineId: string, @Query(new ZodPipe(MetricsQuerySchema)) q: Query): Promise<ContainerMetricsResponse> {
    return this.metrics.containerMetrics(u.userId, machineId, q);
  }

  @Get('projects/:projectId/metrics/cpu')
  projectCpu(@CurrentUser() u: AuthUser, @Param('projectId', new IdParamPipe('project')) projectId: string, @Query(new ZodPipe(MetricsQuerySchema)) q: Query): Promise<ProjectCpuResponse> {
    return this.metrics.projectCpu(u.userId, projectId, q);
  }
}
