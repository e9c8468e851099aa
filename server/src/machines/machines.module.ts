import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ProjectsModule } from '../projects/projects.module';
import { EnrolmentTokenEntity, MachineEntity } from './machine.entity';
import { AgentEnrolController, MachinesController } from './machines.controller';
import { MachinesService } from './machines.service';

@Module({
  imports: [TypeOrmModule.forFeature([MachineEntity, EnrolmentTokenEntity]), ProjectsModule],
  controllers: [MachinesController, AgentEnrolController],
  providers: [MachinesService],
  exports: [MachinesService],
})
export class MachinesModule {}
