import { Global, Module } from '@nestjs/common';
import { BenchStats } from './bench-stats';
import { DomainEventsService } from './events.service';
import { SchedulerService } from './scheduler.service';

@Global()
@Module({
  providers: [BenchStats, DomainEventsService, { provide: SchedulerService, useFactory: () => new SchedulerService() }],
  exports: [DomainEventsService, SchedulerService],
})
export class CommonModule {}
