import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, AppConfig } from '../config/config';

/**
 * The node's idea of now, for everything that compares with a slot. One
 * seam so a spec can give each node its own skewed clock: firing must stay
 * exactly-once when the nodes disagree about the time.
 */
@Injectable()
export class ScheduleClock {
  /** Added to the system clock: KAPITAN_SCHEDULE_CLOCK_SKEW_MS, for tests of drift between nodes (0 otherwise). */
  offsetMs: number;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.offsetMs = config.scheduleClockSkewMs;
  }

  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
}
