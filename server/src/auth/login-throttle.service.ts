import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { ErrorCode } from '@kapitan/shared';
import { In, LessThan, MoreThan, Repository } from 'typeorm';
import { ApiException } from '../common/api-exception';
import { APP_CONFIG, AppConfig } from '../config/config';
import { isUniqueViolation } from '../users/users.service';
import { KnownLoginAddressEntity, LoginFailureEntity } from './session.entity';

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

/**
 * The sliding window plus exponential backoff (OWASP), without I/O.
 * `failures` are those of the backoff lookback. Once `maxFailures` have
 * piled up, each further failure doubles the wait after the latest one:
 * one window after the limit is reached, then 2, 4, 8 … windows, capped at
 * `capSeconds`. The first lock-out is therefore never longer than the window.
 */
export function backoffVerdict(failures: readonly number[], now: number, maxFailures: number, windowSeconds: number, capSeconds: number): ThrottleVerdict {
  const sliding = throttleVerdict(failures, now, maxFailures, windowSeconds);
  let retryAfter = sliding.allowed ? 0 : sliding.retryAfterSeconds;
  // Past the limit, failures inside one window can only be attempts still in
  // flight (a refused one is struck out): they must not steepen the backoff.
  const inWindow = failures.filter((t) => t > now - windowSeconds * 1000).length;
  const counted = failures.length - inWindow + Math.min(inWindow, maxFailures);
  if (counted >= maxFailures) {
    const latest = Math.max(...failures);
    const excess = Math.min(30, counted - maxFailures);
    const waitMs = latest + Math.min(capSeconds, windowSeconds * 2 ** excess) * 1000 - now;
    if (waitMs > 0) retryAfter = Math.max(retryAfter, Math.ceil(waitMs / 1000));
  }
  return retryAfter > 0 ? { allowed: false, retryAfterSeconds: Math.max(1, retryAfter) } : { allowed: true };
}

/** One counter an attempt is checked against. */
export interface ThrottleRule {
  key: string;
  maxFailures: number;
  /** Exponential backoff beyond the limit (else the plain sliding window). */
  backoff: boolean;
}

/** An attempt in flight: its provisional failure rows, by key. */
export interface ThrottledAttempt {
  rows: { key: string; id: number }[];
}

/** The longest wait the backoff reaches; failures older than the lookback no longer count. */
const BACKOFF_CAP_SECONDS = 3600;
const BACKOFF_LOOKBACK_MS = 24 * 3600_000;
/** An address an account logged in from stays "known" this long after its last success. */
const KNOWN_ADDRESS_DAYS = 90;

/**
 * Failed log-ins (and refused sign-ups) counted in the database, so every
 * node sees the same count. Three counters (see `loginRules`):
 * - per account and address: the low limit with exponential backoff; the
 *   owner's right password clears it;
 * - per address, across accounts: the low limit (sliding window only, so an
 *   office behind one NAT is not held off for long by one colleague's typos);
 * - per account, from any address: a higher ceiling with backoff, which does
 *   not apply to addresses the account has logged in from before. A stranger
 *   guessing from many addresses is held off; the owner at home is not.
 *
 * An attempt is written down as a failure *before* the password is checked
 * and struck out again if it succeeds. Checking first and recording after
 * the (slow, on purpose) password hash let a burst of parallel guesses all
 * pass the check before any was recorded; this way at most the limit's worth
 * of attempts per key get as far as the password check, however many arrive
 * at once and on however many nodes.
 */
@Injectable()
export class LoginThrottleService {
  private lastPrune = 0;

  constructor(
    @InjectRepository(LoginFailureEntity) private readonly failures: Repository<LoginFailureEntity>,
    @InjectRepository(KnownLoginAddressEntity) private readonly known: Repository<KnownLoginAddressEntity>,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  accountAddressKey(email: string, ip: string): string {
    return `acct-ip:${email.toLowerCase()}|${ip}`.slice(0, 300);
  }

  addressKey(ip: string): string {
    return `ip:${ip}`.slice(0, 300);
  }

  /** The counters a log-in attempt for `email` from `ip` is checked against. */
  async loginRules(email: string, ip: string): Promise<ThrottleRule[]> {
    const { maxFailures, accountMaxFailures } = this.config.login;
    const rules: ThrottleRule[] = [
      { key: this.accountAddressKey(email, ip), maxFailures, backoff: true },
      { key: this.addressKey(ip), maxFailures, backoff: false },
    ];
    if (!(await this.isKnownAddress(email, ip))) {
      rules.push({ key: `acct:${email.toLowerCase()}`.slice(0, 300), maxFailures: accountMaxFailures, backoff: true });
    }
    return rules;
  }

  /**
   * Records a provisional failure for each rule's key, then throws 429 with
   * Retry-After (recording nothing) when any key was already at its limit.
   */
  async begin(rules: ThrottleRule[], what = 'failed log-ins'): Promise<ThrottledAttempt> {
    const { windowSeconds } = this.config.login;
    const at = new Date();
    const rows: ThrottledAttempt['rows'] = [];
    for (const { key } of rules) {
      const r = await this.failures.insert({ key, at });
      rows.push({ key, id: Number(r.identifiers[0].id) });
    }
    const since = new Date(at.getTime() - BACKOFF_LOOKBACK_MS);
    const found = await this.failures.find({ where: { key: In(rules.map((r) => r.key)), at: MoreThan(since) } });
    const ours = new Set(rows.map((r) => r.id));
    const others = found.filter((r) => !ours.has(Number(r.id)));
    const now = Date.now();
    for (const rule of rules) {
      const times = others.filter((r) => r.key === rule.key).map((r) => r.at.getTime());
      const verdict = rule.backoff
        ? backoffVerdict(times, now, rule.maxFailures, windowSeconds, BACKOFF_CAP_SECONDS)
        : throttleVerdict(times, now, rule.maxFailures, windowSeconds);
      if (!verdict.allowed) {
        // A refused attempt does not count: the lock-out ends when the rule says, not later.
        await this.failures.delete({ id: In([...ours]) });
        throw new ApiException(429, ErrorCode.tooManyRequests, `too many ${what}; retry in ${verdict.retryAfterSeconds} s`, undefined, {
          'Retry-After': String(verdict.retryAfterSeconds),
        });
      }
    }
    return { rows };
  }

  /**
   * The log-in succeeded: the attempt was no failure, the owner's earlier
   * typos from this address are forgiven, and the address becomes known.
   */
  async loggedIn(attempt: ThrottledAttempt, email: string, ip: string): Promise<void> {
    await this.succeeded(attempt);
    await this.failures.delete({ key: this.accountAddressKey(email, ip) });
    await this.rememberAddress(email, ip);
  }

  /** The attempt went through: its provisional rows are struck out. */
  async succeeded(attempt: ThrottledAttempt): Promise<void> {
    if (attempt.rows.length) await this.failures.delete({ id: In(attempt.rows.map((r) => r.id)) });
  }

  /** The attempt failed: the provisional rows stay; now and then old ones are pruned. */
  async failed(): Promise<void> {
    const now = Date.now();
    if (now - this.lastPrune > 60_000) {
      this.lastPrune = now;
      await this.failures.delete({ at: LessThan(new Date(now - BACKOFF_LOOKBACK_MS)) });
    }
  }

  /** An address the account has signed up or logged in from. */
  async rememberAddress(email: string, ip: string): Promise<void> {
    const key = this.accountAddressKey(email, ip);
    const lastSeenAt = new Date();
    try {
      await this.known.insert({ key, lastSeenAt });
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      await this.known.update({ key }, { lastSeenAt });
    }
  }

  private async isKnownAddress(email: string, ip: string): Promise<boolean> {
    const since = new Date(Date.now() - KNOWN_ADDRESS_DAYS * 86400_000);
    return this.known.exists({ where: { key: this.accountAddressKey(email, ip), lastSeenAt: MoreThan(since) } });
  }
}
