import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ContainersModule } from '../containers/containers.module';
import { MachinesModule } from '../machines/machines.module';
import { ProjectsModule } from '../projects/projects.module';
import { MetricsAgentHandlers } from './metrics-agent.handlers';
import { MetricsLiveHandlers } from './metrics-live.handlers';
import { MetricsWatchService } from './metrics-watch.service';
import { ContainerMetricsEntity, HostMetricsEntity } from './metrics.entity';
import { MetricsController } from './metrics.controller';
import { MetricsService } from './metrics.service';

@Module({
  imports: [TypeOrmModule.forFeature([HostMetricsEntity, ContainerMetricsEntity]), ContainersModule, MachinesModule, ProjectsModule],
  controllers: [MetricsController],
  providers: [MetricsService, MetricsWatchService, MetricsAgentHandlers, MetricsLiveHandlers],
  exports: [MetricsService],
})
export class MetricsModule {}
