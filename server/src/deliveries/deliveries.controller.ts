import { Body, Controller, Get, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { CreateDeployRequestSchema, CreateDistributionRequestSchema, Delivery } from '@kapitan/shared';
import { createZodDto } from 'nestjs-zod';
import { AuthUser, CurrentUser } from '../auth/auth-user';
import { IdParamPipe } from '../common/uuid.pipe';
import { DeliveriesService } from './deliveries.service';
import { Audit } from '../audit/audit.decorator';

class CreateDeployDto extends createZodDto(CreateDeployRequestSchema) {}
class CreateDistributionDto extends createZodDto(CreateDistributionRequestSchema) {}

const ProjectId = () => Param('projectId', new IdParamPipe('project'));

@ApiTags('deliveries')
@ApiBearerAuth()
@Controller()
export class DeliveriesController {
  constructor(private readonly deliveries: DeliveriesService) {}

  /** Write a stored file to a path on each target machine. */
  @Audit<Delivery>('deploy.create', { details: (c) => ({ deliveryId: c.result.id, fileId: c.result.file.id, fileName: c.result.file.name, path: c.result.path }) })
  @Post('projects/:projectId/deploys')
  deploy(@CurrentUser() u: AuthUser, @ProjectId() projectId: string, @Body() body: CreateDeployDto): Promise<Delivery> {
    return this.deliveries.deploy(u.userId, projectId, body);
  }

  @Get('projects/:projectId/deploys')
  listDeploys(@CurrentUser() u: AuthUser, @ProjectId() projectId: string): Promise<Delivery[]> {
    return this.deliveries.list(u.userId, projectId, 'deploy');
  }

  /** Load a stored image tarball into the Docker engine of each target machine. */
  @Audit<Delivery>('distribution.create', { details: (c) => ({ deliveryId: c.result.id, fileId: c.result.file.id, fileName: c.result.file.name }) })
  @Post('projects/:projectId/distributions')
  distribute(@CurrentUser() u: AuthUser, @ProjectId() projectId: string, @Body() body: CreateDistributionDto): Promise<Delivery> {
    return this.deliveries.distribute(u.userId, projectId, body);
  }

  @Get('projects/:projectId/distributions')
  listDistributions(@CurrentUser() u: AuthUser, @ProjectId() projectId: string): Promise<Delivery[]> {
    return this.deliveries.list(u.userId, projectId, 'distribution');
  }

  @Get('deliveries/:id')
  get(@CurrentUser() u: AuthUser, @Param('id', new IdParamPipe('delivery')) id: string): Promise<Delivery> {
    return this.deliveries.get(u.userId, id);
  }
}
