import { Logger } from '@nestjs/common';
import type { Logger as TypeOrmLogger } from 'typeorm';

const MAX_SQL = 2000;

/**
 * TypeORM's messages through the app's logger (so they are JSON lines with
 * the rest, under LOG_LEVEL), and without query parameters. TypeORM's own
 * loggers print a failed query with `-- PARAMETERS: [...]`, i.e. the values:
 * a password hash from a sign-up that lost a race for its email, session
 * ids, token hashes. The SQL text and the driver's error say what went wrong;
 * the values stay out of the log.
 */
export class QueryLogger implements TypeOrmLogger {
  private readonly logger = new Logger('Database');

  logQuery(): void {
    // Every query at debug would be noise and would log values; not logged.
  }

  logQueryError(error: string | Error, query: string, parameters?: unknown[]): void {
    const e = error as { message?: string; code?: string };
    this.logger.error(
      { sql: query.slice(0, MAX_SQL), parameterCount: parameters?.length ?? 0, code: e?.code, error: typeof error === 'string' ? error : e?.message },
      'query failed',
    );
  }

  logQuerySlow(time: number, query: string, parameters?: unknown[]): void {
    this.logger.warn({ sql: query.slice(0, MAX_SQL), parameterCount: parameters?.length ?? 0, ms: time }, 'slow query');
  }

  logSchemaBuild(message: string): void {
    this.logger.debug(message);
  }

  logMigration(message: string): void {
    this.logger.log(message);
  }

  log(level: 'log' | 'info' | 'warn', message: unknown): void {
    if (level === 'warn') this.logger.warn(message);
    else this.logger.log(message);
  }
}
