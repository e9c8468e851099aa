import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { MachinesModule } from '../machines/machines.module';
import { ProjectsModule } from '../projects/projects.module';
import { ExecutionChunkEntity, ExecutionEntity } from './execution.entity';
import { ExecutionsController } from './executions.controller';
import { ExecutionsService } from './executions.service';
import { OutputWriter } from './output-writer.service';

@Module({
  imports: [TypeOrmModule.forFeature([ExecutionEntity, ExecutionChunkEntity]), MachinesModule, ProjectsModule],
  controllers: [ExecutionsController],
  providers: [ExecutionsService, OutputWriter],
  exports: [ExecutionsService],
})
export class ExecutionsModule {}
