import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { FilesModule } from '../files/files.module';
import { MachinesModule } from '../machines/machines.module';
import { ProjectsModule } from '../projects/projects.module';
import { SecretsModule } from '../secrets/secrets.module';
import { ExecutionAgentHandlers } from './execution-agent.handlers';
import { ExecutionLifecycleService } from './execution-lifecycle.service';
import { ExecutionLiveHandlers } from './execution-live.handlers';
import { ExecutionLogService } from './execution-log.service';
import { ExecutionSecretsService } from './execution-secrets.service';
import { ExecutionTransitions } from './execution-transitions';
import { ExecutionChunkEntity, ExecutionEntity } from './execution.entity';
import { ExecutionsController } from './executions.controller';
import { ExecutionsService } from './executions.service';
import { OutputWriter } from './output-writer.service';

@Module({
  imports: [TypeOrmModule.forFeature([ExecutionEntity, ExecutionChunkEntity]), MachinesModule, ProjectsModule, SecretsModule, FilesModule],
  controllers: [ExecutionsController],
  providers: [ExecutionsService, ExecutionLogService, ExecutionLifecycleService, ExecutionTransitions, OutputWriter, ExecutionSecretsService, ExecutionAgentHandlers, ExecutionLiveHandlers],
  exports: [ExecutionsService],
})
export class ExecutionsModule {}
