import { Body, Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { ApiToken, CreateApiTokenRequestSchema, CreatedApiToken } from '@kapitan/shared';
import { createZodDto } from 'nestjs-zod';
import { AuthUser, CurrentUser, SessionOnly } from '../auth/auth-user';
import { IdParamPipe } from '../common/uuid.pipe';
import { ApiTokensService } from './api-tokens.service';
import { Audit } from '../audit/audit.decorator';

class CreateApiTokenDto extends createZodDto(CreateApiTokenRequestSchema) {}

@ApiTags('tokens')
@ApiBearerAuth()
@SessionOnly()
@Controller('tokens')
export class ApiTokensController {
  constructor(private readonly tokens: ApiTokensService) {}

  @Audit<CreatedApiToken>('api_token.create', { details: (c) => ({ tokenId: c.result.id, name: c.result.name, role: c.result.role }) })
  @Post()
  create(@CurrentUser() user: AuthUser, @Body() body: CreateApiTokenDto): Promise<CreatedApiToken> {
    return this.tokens.create(user.userId, body);
  }

  @Get()
  list(@CurrentUser() user: AuthUser): Promise<ApiToken[]> {
    return this.tokens.list(user.userId);
  }

  @Audit('api_token.revoke', { details: (c) => ({ tokenId: c.params.id }) })
  @Delete(':id')
  @HttpCode(204)
  revoke(@CurrentUser() user: AuthUser, @Param('id', new IdParamPipe('API token')) id: string): Promise<void> {
    return this.tokens.revoke(user.userId, id);
  }
}
