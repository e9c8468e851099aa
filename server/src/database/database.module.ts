import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { isDatabaseUnavailable } from '../common/exception.filter';
import { APP_CONFIG, AppConfig } from '../config/config';
import { dataSourceOptions } from './data-source';
import { openDataSource } from './open-data-source';

/** Network faults worth waiting out at start (the database container still booting); anything else fails at once. */
const TRANSIENT_START_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

export function isTransientStartError(err: unknown): boolean {
  const e = err as { code?: string; driverError?: { code?: string } } | undefined;
  const code = e?.driverError?.code ?? e?.code;
  return isDatabaseUnavailable(err) || (!!code && TRANSIENT_START_CODES.has(code));
}

@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) => ({
        ...dataSourceOptions(config.database),
        autoLoadEntities: true,
        // Retry (9 × 3 s) only while the database is unreachable; a bad entity, a failed
        // migration or refused credentials stop the start at once with the real error.
        toRetry: isTransientStartError,
      }),
      // Migrations under a lock, so replicas started together do not race on an empty database.
      dataSourceFactory: (options) => openDataSource(options!),
    }),
  ],
})
export class DatabaseModule {}
