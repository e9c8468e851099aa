import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ProjectsModule } from '../projects/projects.module';
import { UsersModule } from '../users/users.module';
import { SecretCipher } from './secret-cipher';
import { SecretEntity } from './secret.entity';
import { SecretsController } from './secrets.controller';
import { SecretsService } from './secrets.service';

/** Project secrets. Runs and schedules use the exported SecretsService.resolve / assertExist. */
@Module({
  imports: [TypeOrmModule.forFeature([SecretEntity]), ProjectsModule, UsersModule],
  controllers: [SecretsController],
  providers: [SecretsService, SecretCipher],
  exports: [SecretsService],
})
export class SecretsModule {}
