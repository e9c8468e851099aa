import { childEnv, spawnProcess } from './process';

const node = (name: string, script: string) =>
  spawnProcess(name, process.execPath, ['-e', script], { env: childEnv({}) });

describe('spawnProcess', () => {
  it('captures stdout and stderr line by line and reports the exit', async () => {
    const p = node('echo', `console.log('one'); console.error('two'); process.stdout.write('three'); process.exitCode = 4;`);
    await expect(p.exited).resolves.toEqual({ code: 4, signal: null });
    expect(p.running).toBe(false);
    expect(p.logs()).toContain('one');
    expect(p.logs()).toContain('[stderr] two');
    expect(p.logs()).toContain('three');
  });

  it('waitForLine resolves on an output line and rejects when the process exits first', async () => {
    const p = node('ready', `setTimeout(() => console.log('listening on 1234'), 100); setTimeout(() => {}, 60000);`);
    await expect(p.waitForLine(/listening on (\d+)/, 5_000)).resolves.toBe('listening on 1234');
    await p.stop();
    const q = node('dies', `console.log('bye')`);
    await expect(q.waitForLine(/never/, 5_000)).rejects.toThrow(/exited \(code 0.*before writing a line matching \/never\//s);
  });

  it('stop escalates to SIGKILL when SIGTERM is ignored', async () => {
    const p = node('stubborn', `process.on('SIGTERM', () => console.log('ignored')); console.log('up'); setInterval(() => {}, 1000);`);
    await p.waitForLine(/^up$/);
    const started = Date.now();
    await expect(p.stop('SIGTERM', 300)).resolves.toEqual({ code: null, signal: 'SIGKILL' });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(p.logs()).toMatch(/ignored[\s\S]*SIGKILL/);
  });

  it('kill is a SIGKILL without grace', async () => {
    const p = node('victim', `console.log('up'); setInterval(() => {}, 1000);`);
    await p.waitForLine(/^up$/);
    await expect(p.kill()).resolves.toEqual({ code: null, signal: 'SIGKILL' });
  });

  it('keeps a bounded log, dropping the oldest lines', async () => {
    const p = spawnProcess('chatty', process.execPath, ['-e', `for (let i = 0; i < 5000; i++) console.log('line ' + i)`], {
      env: childEnv({}),
      maxLogChars: 10_000,
    });
    await p.exited;
    expect(p.logs().length).toBeLessThan(11_000);
    expect(p.logs()).toMatch(/^\[… \d+ older lines dropped\]/);
    expect(p.logs()).toContain('line 4999');
  });
});

describe('childEnv', () => {
  it('drops the runner’s Kapitan configuration and applies overrides', () => {
    const saved = { ...process.env };
    Object.assign(process.env, { DATABASE_URL: 'mysql://prod', KAPITAN_DATA_DIR: '/prod', KAPITAN_TEST_MYSQL_URL: 'mysql://t', HOME_X: 'kept' });
    try {
      const env = childEnv({ PORT: '1', JWT_SECRET: undefined });
      expect(env.DATABASE_URL).toBeUndefined();
      expect(env.KAPITAN_DATA_DIR).toBeUndefined();
      expect(env.KAPITAN_TEST_MYSQL_URL).toBe('mysql://t');
      expect(env.HOME_X).toBe('kept');
      expect(env.PORT).toBe('1');
      expect('JWT_SECRET' in env).toBe(false);
    } finally {
      process.env = saved;
    }
  });
});
