import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { ErrorCode } from '@kapitan/shared';
import { In, LessThan, MoreThan, Repository } from 'typeorm';
import { ApiException } from '../common/api-exception';
import { APP_CONFIG, AppConfig } from '../config/config';
import { LoginFailureEntity } from './session.entity';

export type ThrottleVerdict = { allowed: true } | { allowed: false; retryAfterSeconds: number };

/**
 * The sliding-window rule, without I/O: with `failures` (epoch ms) already
 * counted against a key, may one more attempt go ahead at `now`? When not,
 * Retry-After is when the oldest failure that still counts leaves the window
 * and frees a slot (whole seconds, at least 1).
 */
export function throttleVerdict(failures: readonly number[], now: number, maxFailures: number, windowSeconds: number): ThrottleVerdict {
  const windowMs = windowSeconds * 1000;
  const counted = failures.filter((t) => t > now - windowMs).sort((a, b) => a - b);
  if (counted.length < maxFailures) return { allowed: true };
  const freeAt = counted[counted.length - maxFailures] + windowMs;
  return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((freeAt - now) / 1000)) };
}

/** A log-in attempt in flight: its provisional failure rows. */
export interface LoginAttempt {
  ids: number[];
}

/**
 * Failed log-ins counted per account and per client address in a sliding
 * window. Kept in the database so every node sees the same count.
 *
 * An attempt is written down as a failure *before* the password is checked
 * and struck out again if it succeeds. Checking first and recording after
 * the (slow, on purpose) password hash let a burst of parallel guesses all
 * pass the check before any was recorded; this way at most `maxFailures`
 * attempts per window get as far as the password check, however many arrive
 * at once and on however many nodes.
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

  /**
   * Records a provisional failure for each key, then throws 429 with
   * Retry-After (recording nothing) when any key was already at its limit.
   */
  async begin(keys: string[]): Promise<LoginAttempt> {
    const { maxFailures, windowSeconds } = this.config.login;
    const at = new Date();
    const ids: number[] = [];
    for (const key of keys) {
      const r = await this.failures.insert({ key, at });
      ids.push(Number(r.identifiers[0].id));
    }
    const since = new Date(at.getTime() - windowSeconds * 1000);
    const rows = await this.failures.find({ where: { key: In(keys), at: MoreThan(since) } });
    const others = rows.filter((r) => !ids.includes(Number(r.id)));
    for (const key of keys) {
      const verdict = throttleVerdict(
        others.filter((r) => r.key === key).map((r) => r.at.getTime()),
        Date.now(),
        maxFailures,
        windowSeconds,
      );
      if (!verdict.allowed) {
        // A refused attempt does not count: the lock-out ends when the window says, not later.
        await this.failures.delete({ id: In(ids) });
        throw new ApiException(429, ErrorCode.tooManyRequests, `too many failed log-ins; retry in ${verdict.retryAfterSeconds} s`, undefined, {
          'Retry-After': String(verdict.retryAfterSeconds),
        });
      }
    }
    return { ids };
  }

  /** The password was right: the attempt was not a failure after all. */
  async succeeded(attempt: LoginAttempt): Promise<void> {
    await this.failures.delete({ id: In(attempt.ids) });
  }

  /** The password was wrong: the provisional rows stay; now and then old ones are pruned. */
  async failed(): Promise<void> {
    const now = Date.now();
    if (now - this.lastPrune > 60_000) {
      this.lastPrune = now;
      await this.failures.delete({ at: LessThan(new Date(now - this.config.login.windowSeconds * 1000)) });
    }
  }
}
