import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureServerBuilt, SERVER_MAIN } from '../testing/test-app';

/**
 * The real server process: on a terminal its log lines are for people
 * (pino-pretty), piped anywhere else they stay one JSON object per line.
 * The terminal is a real pseudo-terminal from util-linux `script`.
 */
describe('log format of the server process', () => {
  beforeAll(() => ensureServerBuilt(), 180_000);

  /** Runs the server until its start-up log line arrives; returns everything it wrote. */
  async function startupOutput(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
    const child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    const done = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`no start-up log line within 30 s; output so far: ${out}`));
      }, 30_000);
      const onData = (d: Buffer) => {
        out += d.toString();
        if (/successfully started/.test(out) && /Kapitan is listening/.test(out)) {
          clearTimeout(timer);
          child.kill('SIGTERM');
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.on('close', () => {
        clearTimeout(timer);
        resolve(out);
      });
    });
    return done;
  }

  const dirs: string[] = [];
  const env = (extra: Record<string, string> = {}): NodeJS.ProcessEnv => {
    const dataDir = mkdtempSync(join(tmpdir(), 'kapitan-logfmt-'));
    dirs.push(dataDir);
    return { PATH: process.env.PATH, PORT: '0', HOST: '127.0.0.1', KAPITAN_DATA_DIR: dataDir, KAPITAN_WEB_DIR: join(dataDir, 'none'), ...extra };
  };
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('piped: JSON lines', async () => {
    const out = await startupOutput(process.execPath, [SERVER_MAIN], env());
    const line = out.split('\n').find((l) => l.includes('successfully started'))!;
    expect(JSON.parse(line)).toMatchObject({ level: 30, msg: expect.stringContaining('successfully started') });
  }, 60_000);

  it('on a terminal: human-readable lines, no JSON', async () => {
    const cmd = `exec '${process.execPath}' '${SERVER_MAIN}'`;
    const out = await startupOutput('script', ['-qfec', cmd, '/dev/null'], env());
    const line = out.split(/\r?\n/).find((l) => l.includes('successfully started'))!;
    expect(line).toBeDefined();
    expect(line.trimStart().startsWith('{')).toBe(false);
    // eslint-disable-next-line no-control-regex
    expect(line.replace(/\x1b\[[0-9;]*m/g, '')).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO.*successfully started/);
  }, 60_000);

  it('LOG_FORMAT=json on a terminal keeps JSON', async () => {
    const cmd = `exec '${process.execPath}' '${SERVER_MAIN}'`;
    const out = await startupOutput('script', ['-qfec', cmd, '/dev/null'], env({ LOG_FORMAT: 'json' }));
    const line = out.split(/\r?\n/).find((l) => l.includes('successfully started'))!;
    expect(JSON.parse(line)).toMatchObject({ level: 30 });
  }, 60_000);
});
