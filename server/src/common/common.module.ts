import { Global, Module } from '@nestjs/common';
import { DomainEventsService } from './events.service';
import { SchedulerService } from './scheduler.service';

@Global()
@Module({
  providers: [DomainEventsService, { provide: SchedulerService, useFactory: () => new SchedulerService() }],
  exports: [DomainEventsService, SchedulerService],
})
export class CommonModule {}
