import { Module, OnModuleInit } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ExecutionsModule } from '../executions/executions.module';
import { FileReferences } from '../files/file-references';
import { FilesModule } from '../files/files.module';
import { ProjectsModule } from '../projects/projects.module';
import { OccurrenceEntity, ScheduleEntity } from './schedule.entity';
import { ScheduleClock } from './schedule-clock';
import { ScheduleFiring } from './schedule-firing.service';
import { SchedulesController } from './schedules.controller';
import { SchedulesService } from './schedules.service';

/** Cron and one-shot runs per project, fired once per slot on any number of nodes. */
@Module({
  imports: [TypeOrmModule.forFeature([ScheduleEntity, OccurrenceEntity]), ExecutionsModule, ProjectsModule, FilesModule],
  controllers: [SchedulesController],
  providers: [SchedulesService, ScheduleFiring, ScheduleClock],
  exports: [SchedulesService],
})
export class SchedulesModule implements OnModuleInit {
  constructor(
    private readonly refs: FileReferences,
    private readonly schedules: SchedulesService,
  ) {}

  onModuleInit(): void {
    this.refs.register('schedules', (f) => this.schedules.namesUsingFile(f.id));
  }
}
