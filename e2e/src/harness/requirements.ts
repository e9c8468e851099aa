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

/**
 * Why a test cannot use the Docker engine, or null: the engine answers and
 * Debian's static busybox (what test images are made of) is installed.
 */
export function probeDockerSync(): string | null {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { execFileSync } = require('node:child_process') as typeof import('node:child_process');
  try {
    execFileSync('docker', ['info', '--format', '{{.ServerVersion}}'], { timeout: 15_000, stdio: 'pipe' });
  } catch (err) {
    return `no Docker engine answers \`docker info\` (${String((err as Error).message).split('\n')[0]})`;
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  if (!(require('node:fs') as typeof import('node:fs')).existsSync('/usr/bin/busybox')) return '/usr/bin/busybox is missing (install busybox-static)';
  return null;
}

/** The skip rule for tests that need a Docker engine and busybox-static; synchronous, so `describeOrSkip` can use it before any test runs. */
export function requireDockerSync(): string | null {
  return requirement('Docker engine', probeDockerSync());
}

/** The test Redis: `KAPITAN_TEST_REDIS_URL`, else the local one. */
export function redisUrl(): string {
  return process.env.KAPITAN_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
}

function probeRedis(url: string): string | null {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
  const { hostname, port } = new URL(url);
  // A synchronous probe, because describe blocks are decided before any test runs.
  const out = spawnSync(
    process.execPath,
    ['-e', `const s=require('net').connect(${Number(port || 6379)},'${hostname}');s.on('connect',()=>{s.write('PING\\r\\n')});s.on('data',d=>{process.exit(String(d).startsWith('+PONG')?0:1)});s.on('error',()=>process.exit(1));setTimeout(()=>process.exit(1),2000)`],
    { timeout: 5000 },
  );
  return out.status === 0 ? null : `no Redis answering PING at ${url}`;
}

export function requireRedis(url = redisUrl()): string | null {
  return requirement('Redis', probeRedis(url));
}
