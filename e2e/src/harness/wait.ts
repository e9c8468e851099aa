/**
 * Deadlines instead of sleeps. `waitFor` polls state that announces no event
 * (a REST resource, a file); for socket events use `waitForSocketEvent`.
 */

export interface WaitForOptions {
  /** Give up after this long; default 10 s. */
  timeoutMs?: number;
  /** Pause between two checks; default 100 ms. */
  intervalMs?: number;
  /** What was awaited, for the error at the deadline. */
  message?: string;
}

export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

const describeValue = (v: unknown): string => {
  try {
    const s = typeof v === 'string' ? v : JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 500 ? `${s.slice(0, 500)}…` : s;
  } catch {
    return String(v);
  }
};

type Truthy<T> = Exclude<T, false | null | undefined | 0 | ''>;

/**
 * Calls `fn` until it returns a truthy value and resolves with that value.
 * A throw counts as "not yet". At the deadline rejects with `message`, the
 * last value and the last error. Checks never overlap: the next starts
 * `intervalMs` after the previous one settled.
 */
export async function waitFor<T>(fn: () => T | Promise<T>, options: WaitForOptions = {}): Promise<Truthy<T>> {
  const { timeoutMs = 10_000, intervalMs = 100, message = 'condition' } = options;
  const deadline = Date.now() + timeoutMs;
  let attempts = 0;
  let last: { value?: unknown; error?: unknown } = {};
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<'expired'>((resolve) => {
    timer = setTimeout(() => resolve('expired'), timeoutMs);
  });
  try {
    for (;;) {
      attempts++;
      const outcome = await Promise.race([
        Promise.resolve()
          .then(fn)
          .then(
            (value) => ({ value }),
            (error: unknown) => ({ error }),
          ),
        expired,
      ]);
      if (outcome === 'expired') break;
      last = outcome;
      if (!('error' in outcome) && outcome.value) return outcome.value as Truthy<T>;
      const pause = Math.min(intervalMs, deadline - Date.now());
      if (pause <= 0) break;
      if ((await Promise.race([delay(pause), expired])) === 'expired') break;
    }
  } finally {
    clearTimeout(timer);
  }
  const detail =
    'error' in last
      ? `last error: ${last.error instanceof Error ? last.error.message : describeValue(last.error)}`
      : 'value' in last
        ? `last value: ${describeValue(last.value)}`
        : 'the first check did not finish';
  throw new TimeoutError(`waitFor: ${message} not reached within ${timeoutMs} ms (${attempts} checks; ${detail})`);
}

/** Resolves or rejects like `promise`, or rejects with `message` after `timeoutMs`. */
export async function withDeadline<T>(promise: Promise<T>, timeoutMs: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new TimeoutError(`${message} (deadline ${timeoutMs} ms)`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function delay(ms: number): Promise<'delay'> {
  return new Promise((resolve) => setTimeout(() => resolve('delay'), ms));
}
