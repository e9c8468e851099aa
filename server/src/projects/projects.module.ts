import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { UsersModule } from '../users/users.module';
import { ProjectEntity, ProjectMemberEntity } from './project.entity';
import { ProjectsController } from './projects.controller';
import { ProjectLiveHandlers } from './project-live.handlers';
import { ProjectsService } from './projects.service';

@Module({
  imports: [TypeOrmModule.forFeature([ProjectEntity, ProjectMemberEntity]), UsersModule],
  controllers: [ProjectsController],
  providers: [ProjectsService, ProjectLiveHandlers],
  exports: [ProjectsService],
})
export class ProjectsModule {}
