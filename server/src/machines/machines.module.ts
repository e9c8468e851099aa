import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ProjectsModule } from '../projects/projects.module';
import { EnrolmentTokensService } from './enrolment-tokens.service';
import { EnrolmentService } from './enrolment.service';
import { EnrolmentTokenEntity, MachineEntity } from './machine.entity';
import { AgentEnrolController, MachinesController } from './machines.controller';
import { MachinesService } from './machines.service';
import { MachineLiveForwards } from './machine-live.forwards';
import { PresenceService } from './presence.service';

@Module({
  imports: [TypeOrmModule.forFeature([MachineEntity, EnrolmentTokenEntity]), ProjectsModule],
  controllers: [MachinesController, AgentEnrolController],
  providers: [EnrolmentTokensService, EnrolmentService, MachinesService, PresenceService, MachineLiveForwards],
  exports: [EnrolmentTokensService, EnrolmentService, MachinesService, PresenceService],
})
export class MachinesModule {}
