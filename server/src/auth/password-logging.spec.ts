import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import {
  createScratchDatabase,
  describeBothDatabases,
  ensureServerBuilt,
  ScratchDatabase,
  SERVER_MAIN,
  waitFor,
} from '../testing/test-app';

/**
 * threat model T4, "never logged": the real server process (`node
 * server/dist/main.js`, as `npm start` runs it) at LOG_LEVEL=trace, the most
 * it ever says, goes through sign-up, log-in, wrong passwords, duplicate and
 * racing sign-ups, validation failures and malformed JSON carrying a
 * password. Not one of those passwords, and no password hash, may appear in
 * anything it wrote to stdout or stderr.
 */
describeBothDatabases('passwords in the logs', (database) => {
  let child: ChildProcess | undefined;
  let output = '';
  let url = '';
  let dataDir = '';
  let scratch: ScratchDatabase | undefined;

  beforeAll(async () => {
    ensureServerBuilt();
    dataDir = mkdtempSync(join(tmpdir(), 'kapitan-logs-'));
    if (database === 'mysql') scratch = await createScratchDatabase('mysql');
    child = spawn(process.execPath, [SERVER_MAIN], {
      env: {
        PATH: process.env.PATH,
        PORT: '0',
        HOST: '127.0.0.1',
        LOG_LEVEL: 'trace',
        // The duplicate and racing sign-ups below need sign-up open after the first account.
        KAPITAN_SIGNUP: 'open',
        KAPITAN_DATA_DIR: dataDir,
        KAPITAN_WEB_DIR: join(dataDir, 'no-web'),
        ...(scratch?.databaseUrl ? { DATABASE_URL: scratch.databaseUrl } : {}),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
    const port = await waitFor(
      'the server to say it is listening',
      () => {
        if (child?.exitCode !== null) throw new Error(`the server exited (${child?.exitCode}):\n${output}`);
        return /Kapitan is listening on http:\/\/[^\s]+:(\d+)/.exec(output)?.[1];
      },
      30_000,
    );
    url = `http://127.0.0.1:${port}`;
  }, 240_000);

  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000).unref())]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    await scratch?.drop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('logs no password and no password hash, even at trace level', async () => {
    const http = request(url);
    const password = (tag: string) => `pw-${tag}-${randomBytes(8).toString('hex')}`;
    const used: string[] = [];
    const pw = (tag: string) => {
      const p = password(tag);
      used.push(p);
      return p;
    };
    const email = `logs-${randomBytes(4).toString('hex')}@example.test`;

    const right = pw('right');
    expect((await http.post('/api/auth/signup').send({ email, password: right, name: 'Log Watcher' })).status).toBe(201);
    expect((await http.post('/api/auth/login').send({ email, password: right })).status).toBe(200);
    expect((await http.post('/api/auth/login').send({ email, password: pw('wrong') })).status).toBe(401);
    expect((await http.post('/api/auth/login').send({ email: `nobody-${email}`, password: pw('unknown') })).status).toBe(401);
    expect((await http.post('/api/auth/signup').send({ email, password: pw('duplicate') })).status).toBe(409);
    // Racing sign-ups for one address: one may reach the unique index, whose failure is an error path of its own.
    const raced = `race-${email}`;
    const racing = await Promise.all([0, 1, 2, 3].map((i) => http.post('/api/auth/signup').send({ email: raced, password: pw(`race${i}`) })));
    expect(racing.map((r) => r.status).sort()).toEqual([201, 409, 409, 409]);
    // Refused by validation, with the password in the body.
    expect((await http.post('/api/auth/signup').send({ email: 'not-an-email', password: pw('invalid') })).status).toBe(400);
    expect((await http.post('/api/auth/signup').send({ email, password: pw('extra'), isAdmin: true })).status).toBe(400);
    expect((await http.post('/api/auth/login').send({ email, password: `${pw('long')}${'x'.repeat(300)}` })).status).toBe(400);
    // Malformed JSON: the parser's error message quotes the text around the fault.
    const broken = pw('malformed');
    const malformed = await http.post('/api/auth/login').set('Content-Type', 'application/json').send(`{"email":"${email}","password":"${broken}"x}`);
    expect(malformed.status).toBe(400);
    // Five wrong in a row and a 429.
    for (let i = 0; i < 5; i++) await http.post('/api/auth/login').send({ email: raced, password: pw(`burst${i}`) });
    expect((await http.post('/api/auth/login').send({ email: raced, password: pw('throttled') })).status).toBe(429);

    // The last request's log line marks the end of what the server has written for the ones above.
    const marker = `flush-${randomBytes(6).toString('hex')}`;
    await http.get('/api/me').set('X-Request-Id', marker);
    await waitFor('the log line of the last request', () => (output.includes(marker) ? true : undefined), 10_000);

    // It did log those requests (at trace, plenty) ...
    expect(output).toContain('/api/auth/login');
    expect(output).toContain('/api/auth/signup');
    // ... and none of what must stay secret.
    for (const p of used) expect({ password: p, logged: output.includes(p) }).toEqual({ password: p, logged: false });
    expect(output).not.toMatch(/\$argon2/);
  });
});
