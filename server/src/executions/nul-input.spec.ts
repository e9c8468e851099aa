/**
 * A NUL byte in anything the agent hands to execve or the file system (args,
 * environment names and values, cwd, labels, names) is refused at the door:
 * 400 naming the field and nothing stored, instead of a 201 for work the
 * agent can only fail.
 */
import type { MachineFacts } from '@kapitan/shared';
import { bearer, createTestApp, describeBothDatabases, expectError, expectValidationError, signupUser, TestApp } from '../testing/test-app';

const FACTS: MachineFacts = {
  hostname: 'nul-host',
  os: 'Debian',
  platform: 'linux',
  kernel: '6.1',
  arch: 'x64',
  cpus: 2,
  memoryBytes: 1024,
  agentVersion: 'spec',
  dockerAvailable: false,
};

describeBothDatabases('NUL bytes at the door', (database) => {
  let t: TestApp;
  let owner: string;
  let projectId: string;
  let enrolToken: string;
  const count = async (table: string): Promise<number> => Number((await t.db.query(`SELECT COUNT(*) AS n FROM ${table}`))[0].n);

  beforeAll(async () => {
    t = await createTestApp({ database });
    owner = (await signupUser(t.http)).token;
    projectId = (await t.http.post('/api/projects').set(bearer(owner)).send({ name: 'p' }).expect(201)).body.id;
    enrolToken = (await t.http.post(`/api/projects/${projectId}/enrolment-tokens`).set(bearer(owner)).send({}).expect(201)).body.token;
    await t.http.post('/api/agent/enrol').send({ token: enrolToken, facts: FACTS }).expect(201);
  });
  afterAll(() => t?.close());

  const run = { script: 'echo hi', targets: { all: true } };
  it.each([
    ['args.0', { ...run, args: ['a\0b'] }],
    ['env.NAME', { ...run, env: { NAME: 'v\0' } }],
    ['cwd', { ...run, cwd: '/srv\0/x' }],
    ['targets.labels.env', { ...run, targets: { labels: { env: 'p\0' } } }],
  ])('a run with a NUL in %s → 400 naming it, no execution', async (field, body) => {
    const before = await count('executions');
    expectValidationError(await t.http.post(`/api/projects/${projectId}/executions`).set(bearer(owner)).send(body), field);
    expect(await count('executions')).toBe(before);
  });

  it('a run with a NUL in an environment name → 400 naming env, no execution', async () => {
    const before = await count('executions');
    const res = await t.http.post(`/api/projects/${projectId}/executions`).set(bearer(owner)).send({ ...run, env: { 'A\0B': 'v' } });
    const body = expectError(res, 400, 'validation_failed');
    expect(body.details?.some((d) => d.path.startsWith('env'))).toBe(true);
    expect(await count('executions')).toBe(before);
  });

  it('the same run without the NUL is accepted (control)', async () => {
    await t.http.post(`/api/projects/${projectId}/executions`).set(bearer(owner)).send({ ...run, args: ['ab'], env: { NAME: 'v' }, cwd: '/srv' }).expect(201);
  });

  it('a project name or description with a NUL → 400 naming it, nothing stored or changed', async () => {
    const before = await count('projects');
    expectValidationError(await t.http.post('/api/projects').set(bearer(owner)).send({ name: 'a\0' }), 'name');
    expectValidationError(await t.http.post('/api/projects').set(bearer(owner)).send({ name: 'a', description: 'd\0' }), 'description');
    expectValidationError(await t.http.patch(`/api/projects/${projectId}`).set(bearer(owner)).send({ name: 'b\0' }), 'name');
    expect(await count('projects')).toBe(before);
    expect((await t.http.get(`/api/projects/${projectId}`).set(bearer(owner))).body.name).toBe('p');
  });

  it('a user name with a NUL at sign-up → 400 naming it, no account', async () => {
    const before = await count('users');
    expectValidationError(await t.http.post('/api/auth/signup').send({ email: 'nul@example.test', password: 'long enough pw', name: 'n\0' }), 'name');
    expect(await count('users')).toBe(before);
  });

  it('an enrolment whose facts or labels hold a NUL → 400 naming the field, no machine', async () => {
    const before = await count('machines');
    expectValidationError(await t.http.post('/api/agent/enrol').send({ token: enrolToken, facts: { ...FACTS, hostname: 'h\0' } }), 'facts.hostname');
    expectValidationError(await t.http.post('/api/agent/enrol').send({ token: enrolToken, facts: FACTS, labels: { role: 'w\0' } }), 'labels.role');
    expect(await count('machines')).toBe(before);
  });
});
