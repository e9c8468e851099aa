import { CreateExecutionRequestSchema, CreateProjectRequestSchema, issueDetails, MachineFactsSchema, SignupRequestSchema, UpdateMachineRequestSchema } from './index';

/** Strings the agent hands to execve or the file system carry no NUL byte: each field refuses one, by name. */
describe('NUL bytes', () => {
  const run = { script: 'echo hi', targets: { all: true } };
  const facts = { hostname: 'h', os: 'linux', platform: 'linux', kernel: '6', arch: 'x64', cpus: 1, memoryBytes: 1, agentVersion: '1', dockerAvailable: false };

  it.each([
    ['args.1', { ...run, args: ['ok', 'a\0b'] }],
    ['env.GOOD', { ...run, env: { GOOD: 'x\0' } }],
    ['cwd', { ...run, cwd: '/tmp\0/x' }],
    ['targets.labels.env', { ...run, targets: { labels: { env: 'prod\0' } } }],
  ])('a run refuses one in %s', (field, body) => {
    const r = CreateExecutionRequestSchema.safeParse(body);
    expect(r.success).toBe(false);
    expect(issueDetails(r.error!).map((d) => d.path)).toContain(field);
  });

  it('a run refuses one in an environment name', () => {
    const r = CreateExecutionRequestSchema.safeParse({ ...run, env: { 'A\0B': 'x' } });
    expect(r.success).toBe(false);
    expect(issueDetails(r.error!).map((d) => d.path)[0]).toMatch(/^env/);
  });

  it.each([
    ['project name', CreateProjectRequestSchema, { name: 'a\0b' }, 'name'],
    ['project description', CreateProjectRequestSchema, { name: 'a', description: 'x\0' }, 'description'],
    ['user name', SignupRequestSchema, { email: 'a@b.co', password: 'long enough pw', name: 'n\0' }, 'name'],
    ['machine hostname', MachineFactsSchema, { ...facts, hostname: 'h\0' }, 'hostname'],
    ['machine label', UpdateMachineRequestSchema, { labels: { role: 'w\0' } }, 'labels.role'],
  ] as const)('a %s refuses one', (_, schema, body, field) => {
    const r = schema.safeParse(body);
    expect(r.success).toBe(false);
    expect(issueDetails(r.error!).map((d) => d.path)).toContain(field);
  });

  it('the same strings without the NUL pass', () => {
    expect(CreateExecutionRequestSchema.safeParse({ ...run, args: ['ab'], env: { GOOD: 'x' }, cwd: '/tmp/x' }).success).toBe(true);
    expect(CreateProjectRequestSchema.safeParse({ name: 'ab' }).success).toBe(true);
  });
});
