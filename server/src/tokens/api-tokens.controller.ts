import { Body, Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { ApiToken, CreateApiTokenRequestSchema, CreatedApiToken } from '@kapitan/shared';
import { createZodDto } from 'nestjs-zod';
import { AuthUser, CurrentUser, SessionOnly } from '../auth/auth-user';
import { IdParamPipe } from '../common/uuid.pipe';
import { ApiTokensService } from './api-tokens.service';

class CreateApiTokenDto extends createZodDto(CreateApiTokenRequestSchema) {}

@ApiTags('tokens')
@ApiBearerAuth()
@SessionOnly()
@Controller('tokens')
export class ApiTokensController {
  constructor(private readonly tokens: ApiTokensService) {}

  @Post()
  create(@CurrentUser() user: AuthUser, @Body() body: CreateApiTokenDto): Promise<CreatedApiToken> {
    return this.tokens.create(user.userId, body);
  }

  @Get()
  list(@CurrentUser() user: AuthUser): Promise<ApiToken[]> {
    return this.tokens.list(user.userId);
  }

  @Delete(':id')
  @HttpCode(204)
  revoke(@CurrentUser() user: AuthUser, @Param('id', new IdParamPipe('API token')) id: string): Promise<void> {
    return this.tokens.revoke(user.userId, id);
  }
}
