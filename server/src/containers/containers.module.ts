import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { MachinesModule } from '../machines/machines.module';
import { ProjectsModule } from '../projects/projects.module';
import { ContainerAgentHandlers } from './container-agent.handlers';
import { ContainerLiveHandlers } from './container-live.handlers';
import { ContainerLogsService } from './container-logs.service';
import { ContainerOperationsService } from './container-operations.service';
import { ContainerStateService } from './container-state.service';
import { ContainerEntity, ContainerOperationEntity, DockerHostEntity } from './container.entity';
import { ContainersController } from './containers.controller';

@Module({
  imports: [TypeOrmModule.forFeature([ContainerEntity, DockerHostEntity, ContainerOperationEntity]), MachinesModule, ProjectsModule],
  controllers: [ContainersController],
  providers: [ContainerStateService, ContainerOperationsService, ContainerLogsService, ContainerAgentHandlers, ContainerLiveHandlers],
  exports: [ContainerStateService],
})
export class ContainersModule {}
