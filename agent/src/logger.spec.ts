import { configFromEnv, DEFAULT_CONFIG } from './config';
import { createLogger, parseLogLevel } from './logger';

describe('logger', () => {
  it('writes one JSON object per line, filtered by level, secrets redacted', () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', write: (l) => lines.push(l) }).child({ component: 'test' });
    log.debug('hidden');
    log.info('hello', { credential: 'mc_secret', nested: { token: 't', ok: 1 }, err: new Error('boom') });
    log.error('bad');
    expect(lines).toHaveLength(2);
    expect(lines.every((l) => l.endsWith('\n'))).toBe(true);
    const first = JSON.parse(lines[0]!);
    expect(first).toMatchObject({ level: 'info', msg: 'hello', component: 'test', credential: '[redacted]', nested: { token: '[redacted]', ok: 1 } });
    expect(first.err).toEqual({ name: 'Error', message: 'boom' });
    expect(lines.join('')).not.toContain('mc_secret');
  });

  it('parses levels', () => {
    expect(parseLogLevel(undefined)).toBe('info');
    expect(parseLogLevel('DEBUG')).toBe('debug');
    expect(() => parseLogLevel('loud')).toThrow(/invalid log level/);
    const lines: string[] = [];
    createLogger({ level: 'silent', write: (l) => lines.push(l) }).error('x');
    expect(lines).toEqual([]);
  });
});

describe('configFromEnv', () => {
  it('reads the tunables and rejects invalid values', () => {
    expect(configFromEnv({})).toEqual(DEFAULT_CONFIG);
    expect(
      configFromEnv({
        KAPITAN_AGENT_MAX_BACKOFF_MS: '100',
        KAPITAN_AGENT_HEARTBEAT_MS: '250',
        KAPITAN_AGENT_OUTBOX_BYTES: '65536',
        KAPITAN_AGENT_KILL_GRACE_MS: '0',
        KAPITAN_AGENT_LOG_LEVEL: 'warn',
      }),
    ).toMatchObject({ maxBackoffMs: 100, heartbeatMs: 250, outboxBytes: 65536, killGraceMs: 0, logLevel: 'warn' });
    expect(() => configFromEnv({ KAPITAN_AGENT_OUTBOX_BYTES: '12abc' })).toThrow(/KAPITAN_AGENT_OUTBOX_BYTES/);
    expect(() => configFromEnv({ KAPITAN_AGENT_MAX_BACKOFF_MS: '0' })).toThrow(/>= 1/);
    expect(() => configFromEnv({ KAPITAN_AGENT_HEARTBEAT_MS: '1.5' })).toThrow(/integer/);
  });
});
