import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import {
  AddMemberRequestSchema,
  AddMemberResponse,
  CreateProjectRequestSchema,
  Member,
  Project,
  UpdateMemberRequestSchema,
  UpdateProjectRequestSchema,
} from '@kapitan/shared';
import { createZodDto } from 'nestjs-zod';
import { IdParamPipe } from '../common/uuid.pipe';
import { AuthUser, CurrentUser, SessionOnly } from '../auth/auth-user';
import { ProjectsService } from './projects.service';
import { Audit } from '../audit/audit.decorator';

class CreateProjectDto extends createZodDto(CreateProjectRequestSchema) {}
class UpdateProjectDto extends createZodDto(UpdateProjectRequestSchema) {}
class AddMemberDto extends createZodDto(AddMemberRequestSchema) {}
class UpdateMemberDto extends createZodDto(UpdateMemberRequestSchema) {}

const ProjectId = () => Param('projectId', new IdParamPipe('project'));

@ApiTags('projects')
@ApiBearerAuth()
@Controller('projects')
export class ProjectsController {
  constructor(private readonly projects: ProjectsService) {}

  @Get()
  list(@CurrentUser() user: AuthUser): Promise<Project[]> {
    return this.projects.list(user.userId);
  }

  @SessionOnly()
  @Audit<Project>('project.create', { projectId: (c) => c.result.id, details: (c) => ({ name: c.result.name }) })
  @Post()
  create(@CurrentUser() user: AuthUser, @Body() body: CreateProjectDto): Promise<Project> {
    return this.projects.create(user.userId, body);
  }

  @Get(':projectId')
  get(@CurrentUser() user: AuthUser, @ProjectId() projectId: string): Promise<Project> {
    return this.projects.get(user.userId, projectId);
  }

  @Audit<Project>('project.update', { details: (c) => ({ name: c.result.name, fields: Object.keys(c.body) }) })
  @Patch(':projectId')
  update(@CurrentUser() user: AuthUser, @ProjectId() projectId: string, @Body() body: UpdateProjectDto): Promise<Project> {
    return this.projects.update(user.userId, projectId, body);
  }

  @Audit('project.delete')
  @Delete(':projectId')
  @HttpCode(204)
  delete(@CurrentUser() user: AuthUser, @ProjectId() projectId: string): Promise<void> {
    return this.projects.delete(user.userId, projectId);
  }

  @Get(':projectId/members')
  members(@CurrentUser() user: AuthUser, @ProjectId() projectId: string): Promise<Member[]> {
    return this.projects.listMembers(user.userId, projectId);
  }

  @SessionOnly()
  @Audit<AddMemberResponse>('member.add', { details: (c) => ({ email: c.result.email, role: c.result.role }) })
  @Post(':projectId/members')
  addMember(@CurrentUser() user: AuthUser, @ProjectId() projectId: string, @Body() body: AddMemberDto): Promise<AddMemberResponse> {
    return this.projects.addMember(user.userId, projectId, body);
  }

  @SessionOnly()
  @Audit<Member>('member.update', { details: (c) => ({ userId: c.params.userId, role: c.result.role }) })
  @Patch(':projectId/members/:userId')
  updateMember(
    @CurrentUser() user: AuthUser,
    @ProjectId() projectId: string,
    @Param('userId', new IdParamPipe('member')) memberId: string,
    @Body() body: UpdateMemberDto,
  ): Promise<Member> {
    return this.projects.updateMember(user.userId, projectId, memberId, body);
  }

  @SessionOnly()
  @Audit('member.remove', { details: (c) => ({ userId: c.params.userId }) })
  @Delete(':projectId/members/:userId')
  @HttpCode(204)
  removeMember(
    @CurrentUser() user: AuthUser,
    @ProjectId() projectId: string,
    @Param('userId', new IdParamPipe('member')) memberId: string,
  ): Promise<void> {
    return this.projects.removeMember(user.userId, projectId, memberId);
  }
}
