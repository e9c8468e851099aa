import { Logger } from '@nestjs/common';
import type { Logger as TypeOrmLogger } from 'typeorm';
import { isUniqueViolation } from '../common/unique-violation';

const MAX_SQL = 2000;

/**
 * TypeORM's messages through the app's logger (so they are JSON lines with
 * the rest, under LOG_LEVEL), and without query parameters. TypeORM's own
 * loggers print a failed query with `-- PARAMETERS: [...]`, i.e. the values:
 * a password hash from a sign-up that lost a race for its email, session
 * ids, token hashes. The SQL text and the driver's error say what went wrong;
 * the values stay out of the log.
 *
 * A duplicate key is logged at debug, not as an error: it is how an INSERT
 * learns that another writer got there first (two nodes claiming one
 * schedule slot, two sign-ups of one email), and its caller turns it into
 * the answer (a lost claim, a 409). One that no caller handles becomes a
 * 500, logged as an unhandled error with its stack. Before, a two-node
 * cluster logged an error for every schedule slot, on the node that lost.
 */
export class QueryLogger implements TypeOrmLogger {
  private readonly logger = new Logger('Database');

  logQuery(): void {
    // Every query at debug would be noise and would log values; not logged.
  }

  logQueryError(error: string | Error, query: string, parameters?: unknown[]): void {
    const e = error as { message?: string; code?: string };
    const entry = { sql: query.slice(0, MAX_SQL), parameterCount: parameters?.length ?? 0, code: e?.code, error: typeof error === 'string' ? error : e?.message };
    if (isUniqueViolation(error)) this.logger.debug(entry, 'query refused a duplicate key');
    else this.logger.error(entry, 'query failed');
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
