import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { FilesModule } from '../files/files.module';
import { MachinesModule } from '../machines/machines.module';
import { ProjectsModule } from '../projects/projects.module';
import { DeliveriesController } from './deliveries.controller';
import { DeliveriesService } from './deliveries.service';
import { DeliveryChannelHandlers } from './delivery-channel.handlers';
import { DeliveryLifecycleService } from './delivery-lifecycle.service';
import { DeliveryEntity, DeliveryMachineEntity } from './delivery.entity';

/** Deploys (a file written to a path) and distributions (an image loaded into Docker) of stored files to machines. */
@Module({
  imports: [TypeOrmModule.forFeature([DeliveryEntity, DeliveryMachineEntity]), FilesModule, MachinesModule, ProjectsModule],
  controllers: [DeliveriesController],
  providers: [DeliveriesService, DeliveryLifecycleService, DeliveryChannelHandlers],
})
export class DeliveriesModule {}
