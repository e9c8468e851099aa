import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { CreateInvitationRequestSchema, InstanceSettings, Invitation, UpdateInstanceSettingsRequestSchema } from '@kapitan/shared';
import { createZodDto } from 'nestjs-zod';
import { AuthUser, CurrentUser } from '../auth/auth-user';
import { IdParamPipe } from '../common/uuid.pipe';
import { AdminGuard } from './admin.guard';
import { InstanceSettingsService } from './instance-settings.service';
import { InvitationsService } from './invitations.service';
import { Audit, bodyString } from '../audit/audit.decorator';

class UpdateInstanceSettingsDto extends createZodDto(UpdateInstanceSettingsRequestSchema) {}
class CreateInvitationDto extends createZodDto(CreateInvitationRequestSchema) {}

@ApiTags('admin')
@ApiBearerAuth()
@UseGuards(AdminGuard)
@Controller('admin')
export class InvitationsController {
  constructor(
    private readonly settings: InstanceSettingsService,
    private readonly invitations: InvitationsService,
  ) {}

  @Get('settings')
  getSettings(): Promise<InstanceSettings> {
    return this.settings.get();
  }

  @Audit<InstanceSettings>('instance.settings_update', { details: (c) => ({ signupMode: bodyString(c, 'signupMode') }) })
  @Patch('settings')
  updateSettings(@Body() body: UpdateInstanceSettingsDto): Promise<InstanceSettings> {
    return this.settings.update(body);
  }

  @Get('invitations')
  list(): Promise<Invitation[]> {
    return this.invitations.list();
  }

  @Audit<Invitation>('invitation.create', { details: (c) => ({ invitationId: c.result.id, prefix: c.result.prefix }) })
  @Post('invitations')
  create(@CurrentUser() user: AuthUser, @Body() body: CreateInvitationDto): Promise<Invitation> {
    return this.invitations.create(user.userId, body);
  }

  @Audit('invitation.revoke', { details: (c) => ({ invitationId: c.params.invitationId }) })
  @Delete('invitations/:invitationId')
  @HttpCode(204)
  revoke(@Param('invitationId', new IdParamPipe('invitation')) id: string): Promise<void> {
    return this.invitations.revoke(id);
  }
}
