import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ProjectsModule } from '../projects/projects.module';
import { UsersModule } from '../users/users.module';
import { ApiTokenAuthService } from './api-token-auth.service';
import { ApiTokenEntity } from './api-token.entity';
import { ApiTokensController } from './api-tokens.controller';
import { ApiTokensService } from './api-tokens.service';

/** Operators' API tokens. The auth guard uses the exported ApiTokenAuthService. */
@Module({
  imports: [TypeOrmModule.forFeature([ApiTokenEntity]), ProjectsModule, UsersModule],
  controllers: [ApiTokensController],
  providers: [ApiTokensService, ApiTokenAuthService],
  exports: [ApiTokenAuthService],
})
export class TokensModule {}
