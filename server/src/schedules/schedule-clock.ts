import { Injectable } from '@nestjs/common';

/**
 * The node's idea of now, for everything that compares with a slot. One
 * seam so a spec can give each node its own skewed clock: firing must stay
 * exactly-once when the nodes disagree about the time.
 */
@Injectable()
export class ScheduleClock {
  /** Added to the system clock; tests only. */
  offsetMs = 0;

  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
}
