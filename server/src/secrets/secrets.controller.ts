import { Body, Controller, Delete, Get, HttpCode, Param, Post, Put } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { CreateSecretRequestSchema, Secret, UpdateSecretRequestSchema } from '@kapitan/shared';
import { createZodDto } from 'nestjs-zod';
import { AuthUser, CurrentUser } from '../auth/auth-user';
import { IdParamPipe } from '../common/uuid.pipe';
import { SecretNamePipe } from './secret-name.pipe';
import { SecretsService } from './secrets.service';
import { Audit } from '../audit/audit.decorator';

class CreateSecretDto extends createZodDto(CreateSecretRequestSchema) {}
class UpdateSecretDto extends createZodDto(UpdateSecretRequestSchema) {}

const ProjectId = () => Param('projectId', new IdParamPipe('project'));
const Name = () => Param('name', new SecretNamePipe());

@ApiTags('secrets')
@ApiBearerAuth()
@Controller('projects/:projectId/secrets')
export class SecretsController {
  constructor(private readonly secrets: SecretsService) {}

  @Get()
  list(@CurrentUser() u: AuthUser, @ProjectId() projectId: string): Promise<Secret[]> {
    return this.secrets.list(u.userId, projectId);
  }

  @Audit<Secret>('secret.create', { details: (c) => ({ name: c.result.name }) })
  @Post()
  create(@CurrentUser() u: AuthUser, @ProjectId() projectId: string, @Body() body: CreateSecretDto): Promise<Secret> {
    return this.secrets.create(u.userId, projectId, body);
  }

  @Audit('secret.update', { details: (c) => ({ name: c.params.name }) })
  @Put(':name')
  rotate(@CurrentUser() u: AuthUser, @ProjectId() projectId: string, @Name() name: string, @Body() body: UpdateSecretDto): Promise<Secret> {
    return this.secrets.rotate(u.userId, projectId, name, body);
  }

  @Audit('secret.delete', { details: (c) => ({ name: c.params.name }) })
  @Delete(':name')
  @HttpCode(204)
  delete(@CurrentUser() u: AuthUser, @ProjectId() projectId: string, @Name() name: string): Promise<void> {
    return this.secrets.delete(u.userId, projectId, name);
  }
}
