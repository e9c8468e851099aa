/**
 * The skip rule (docs/design.md "Tests"): locally a test whose dependency is missing
 * may skip, with the reason printed; under CI=true a missing dependency is a
 * failure, never a silent skip.
 */

export function isCI(): boolean {
  return /^(1|true|yes)$/i.test(process.env.CI ?? '');
}

/**
 * Apply the skip rule to a probe result. `reason` null means the dependency is
 * there: returns null. Otherwise, under CI throws; locally prints the reason
 * and returns it, for `describeOrSkip`.
 */
export function requirement(dependency: string, reason: string | null): string | null {
  if (reason === null) return null;
  const text = `${dependency} unavailable: ${reason}`;
  if (isCI()) {
    throw new Error(`${text}\n(CI=true: a missing dependency is a failure, not a skip)`);
  }
  process.stderr.write(`[e2e] SKIP (local run only) — ${text}\n`);
  return text;
}

/**
 * `describe` when every reason is null, otherwise `describe.skip`. Usage:
 *   describeOrSkip(requireMysql(), requireChromium())('…', () => { … });
 */
export function describeOrSkip(...reasons: (string | null)[]): jest.Describe {
  return reasons.some((r) => r !== null) ? describe.skip : describe;
}
