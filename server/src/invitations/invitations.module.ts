import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { InstanceSettingEntity, InvitationEntity } from './invitation.entity';
import { InstanceSettingsService } from './instance-settings.service';
import { InvitationsController } from './invitations.controller';
import { InvitationsService } from './invitations.service';

@Module({
  imports: [TypeOrmModule.forFeature([InstanceSettingEntity, InvitationEntity])],
  controllers: [InvitationsController],
  providers: [InstanceSettingsService, InvitationsService],
  exports: [InstanceSettingsService, InvitationsService],
})
export class InvitationsModule {}
