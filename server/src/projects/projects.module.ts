import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { UsersModule } from '../users/users.module';
import { ProjectEntity, ProjectMemberEntity } from './project.entity';
import { ProjectInvitationEntity } from './project-invitation.entity';
import { ProjectInvitationsService } from './project-invitations.service';
import { ProjectsController } from './projects.controller';
import { ProjectLiveHandlers } from './project-live.handlers';
import { ProjectsService } from './projects.service';

@Module({
  imports: [TypeOrmModule.forFeature([ProjectEntity, ProjectMemberEntity, ProjectInvitationEntity]), UsersModule],
  controllers: [ProjectsController],
  providers: [ProjectsService, ProjectInvitationsService, ProjectLiveHandlers],
  exports: [ProjectsService, ProjectInvitationsService],
})
export class ProjectsModule {}
