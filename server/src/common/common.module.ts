import { Global, Module } from '@nestjs/common';
import { DomainEventsService } from './events.service';

@Global()
@Module({ providers: [DomainEventsService], exports: [DomainEventsService] })
export class CommonModule {}
