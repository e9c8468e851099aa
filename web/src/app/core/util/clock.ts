import { DestroyRef, Injectable, inject, signal } from '@angular/core';

/** A coarse "now" for relative times and running durations, ticking once a second. */
@Injectable({ providedIn: 'root' })
export class Clock {
  private readonly _now = signal(Date.now());
  readonly now = this._now.asReadonly();

  constructor() {
    const h = setInterval(() => this._now.set(Date.now()), 1000);
    inject(DestroyRef).onDestroy(() => clearInterval(h));
  }
}
