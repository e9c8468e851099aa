import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { ErrorCode } from '@kapitan/shared';
import { In, LessThan, MoreThan, Repository } from 'typeorm';
import { ApiException } from '../common/api-exception';
import { APP_CONFIG, AppConfig } from '../config/config';
import { LoginFailureEntity } from './session.entity';

/**
 * Failed log-ins counted per account and per client address in a sliding
 * window. Kept in the database so every node sees the same count.
 */
@Injectable()
export class LoginThrottleService {
  private lastPrune = 0;

  constructor(
    @InjectRepository(LoginFailureEntity) private readonly failures: Repository<LoginFailureEntity>,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  keys(email: string, ip: string): string[] {
    return [`acct:${email.toLowerCase()}`.slice(0, 300), `ip:${ip}`.slice(0, 300)];
  }

  /** Throws 429 with Retry-After when either key has used up its failures. */
  async assertAllowed(keys: string[]): Promise<void> {
    const { maxFailures, windowSeconds } = this.config.login;
    const since = new Date(Date.now() - windowSeconds * 1000);
    const rows = await this.failures.find({ where: { key: In(keys), at: MoreThan(since) }, order: { at: 'ASC' } });
    for (const key of keys) {
      const mine = rows.filter((r) => r.key === key);
      if (mine.length >= maxFailures) {
        // The window frees a slot when the oldest failure that still counts leaves it.
        const freeAt = mine[mine.length - maxFailures].at.getTime() + windowSeconds * 1000;
        const retryAfter = Math.max(1, Math.ceil((freeAt - Date.now()) / 1000));
        throw new ApiException(429, ErrorCode.tooManyRequests, `too many failed log-ins; retry in ${retryAfter} s`, undefined, {
          'Retry-After': String(retryAfter),
        });
      }
    }
  }

  async recordFailure(keys: string[]): Promise<void> {
    const at = new Date();
    await this.failures.insert(keys.map((key) => ({ key, at })));
    if (at.getTime() - this.lastPrune > 60_000) {
      this.lastPrune = at.getTime();
      await this.failures.delete({ at: LessThan(new Date(at.getTime() - this.config.login.windowSeconds * 1000)) });
    }
  }
}
