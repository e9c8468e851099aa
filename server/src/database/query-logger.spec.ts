import { Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { UserEntity } from '../users/user.entity';
import { createTestApp, describeBothDatabases, signupUser, TestApp } from '../testing/test-app';
import { QueryLogger } from './query-logger';

/** Everything handed to the app's logger or the console while `work` runs, as one string. */
async function captureLogs(work: () => Promise<unknown>): Promise<{ text: string; calls: unknown[][] }> {
  const calls: unknown[][] = [];
  const spies = [
    ...(['error', 'warn', 'log', 'debug', 'verbose'] as const).map((m) =>
      jest.spyOn(Logger.prototype, m).mockImplementation((...args: unknown[]) => void calls.push(args)),
    ),
    ...(['log', 'info', 'warn', 'error', 'debug'] as const).map((m) =>
      jest.spyOn(console, m).mockImplementation((...args: unknown[]) => void calls.push(args)),
    ),
  ];
  try {
    await work();
  } finally {
    for (const s of spies) s.mockRestore();
  }
  return { text: calls.map((c) => JSON.stringify(c, (_, v) => (v instanceof Error ? v.message : v))).join('\n'), calls };
}

describe('QueryLogger (unit)', () => {
  it('logs a failed query with its SQL and error, never its parameter values', async () => {
    const { text, calls } = await captureLogs(async () =>
      new QueryLogger().logQueryError(
        Object.assign(new Error("Duplicate entry 'a@b.co' for key 'UQ_users_email'"), { code: 'ER_DUP_ENTRY' }),
        'INSERT INTO `users`(`id`, `email`, `passwordHash`) VALUES (?, ?, ?)',
        ['id-1', 'a@b.co', '$argon2id$v=19$m=19456,t=2,p=1$c2VjcmV0$aGFzaA'],
      ),
    );
    expect(calls).toHaveLength(1);
    expect(text).toContain('query refused a duplicate key');
    expect(text).toContain('INSERT INTO `users`');
    expect(text).toContain('ER_DUP_ENTRY');
    expect(text).toContain('"parameterCount":3');
    expect(text).not.toContain('$argon2id');
  });

  it('logs a duplicate key at debug (a lost race its caller answers), any other failure as an error', async () => {
    const levels = async (code: string): Promise<string[]> => {
      const seen: string[] = [];
      const spies = (['error', 'warn', 'log', 'debug'] as const).map((m) => jest.spyOn(Logger.prototype, m).mockImplementation(() => void seen.push(m)));
      try {
        new QueryLogger().logQueryError(Object.assign(new Error(code), { code }), 'INSERT INTO t VALUES (?)', [1]);
      } finally {
        for (const s of spies) s.mockRestore();
      }
      return seen;
    };
    expect(await levels('ER_DUP_ENTRY')).toEqual(['debug']);
    expect(await levels('SQLITE_CONSTRAINT_UNIQUE')).toEqual(['debug']);
    expect(await levels('ER_LOCK_DEADLOCK')).toEqual(['error']);
    expect(await levels('SQLITE_CONSTRAINT_FOREIGNKEY')).toEqual(['error']);
  });

  it('logs a slow query without its values either', async () => {
    const { text } = await captureLogs(async () => new QueryLogger().logQuerySlow(2500, 'SELECT * FROM sessions WHERE id = ?', ['session-secret']));
    expect(text).toContain('slow query');
    expect(text).not.toContain('session-secret');
  });

  it('does not log ordinary queries at all', async () => {
    const { calls } = await captureLogs(async () => new QueryLogger().logQuery());
    expect(calls).toEqual([]);
  });
});

describeBothDatabases('a failed query in the real app', (database) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ database });
  });
  afterAll(() => t?.close());

  it('is logged without the values it carried (a password hash here)', async () => {
    const { email } = await signupUser(t.http);
    const secret = `$argon2id$v=19$m=19456,t=2,p=1$${randomUUID()}`;
    let failure: unknown;
    const { text } = await captureLogs(async () => {
      const now = new Date();
      failure = await t.db
        .getRepository(UserEntity)
        .insert({ id: randomUUID(), email, name: null, passwordHash: secret, isAdmin: false, createdAt: now, updatedAt: now })
        .then(() => undefined, (err: unknown) => err);
    });
    expect(failure).toBeDefined(); // the unique index refused the second row
    expect(text).toContain('query refused a duplicate key');
    expect(text).not.toContain(secret);
    expect(text).not.toContain('PARAMETERS');
  });
});
