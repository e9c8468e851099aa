import { ContainerIdSchema, CreateContainerRequestSchema } from './containers';
import { ContainersSnapshotSchema } from './events';
import { issueDetails } from './validate';

const paths = (v: unknown): string[] => {
  const r = CreateContainerRequestSchema.safeParse(v);
  return r.success ? [] : issueDetails(r.error).map((d) => d.path);
};

describe('container contracts', () => {
  it('name one container id by every spelling, and refuse short or non-hex ids', () => {
    expect(ContainerIdSchema.parse('A'.repeat(64))).toBe('a'.repeat(64));
    expect(ContainerIdSchema.safeParse('a'.repeat(12)).success).toBe(false);
    expect(ContainerIdSchema.safeParse('g'.repeat(64)).success).toBe(false);
  });

  it('take a create spec as argv and typed mappings, and name the field at fault', () => {
    expect(paths({ image: 'app:1', name: 'web', env: { A_1: 'x=y' }, ports: [{ containerPort: 80, hostPort: 8080 }], volumes: [{ source: '/srv', target: '/data', readOnly: true }, { source: 'cache', target: '/c' }], restartPolicy: 'always', command: ['sh', '-c', 'echo $(x); `y`'] })).toEqual([]);
    expect(paths({ image: 'app', command: 'sh -c x' })).toEqual(['command']);
    expect(paths({ image: 'app', volumes: [{ source: '../x', target: '/d' }] })).toEqual(['volumes.0.source']);
    expect(paths({ image: 'app', ports: [{ containerPort: 80, hostIp: 'localhost' }] })).toEqual(['ports.0.hostIp']);
    expect(paths({ image: 'app', env: { 'A-B': 'x' } })).toEqual(['env.A-B']);
    expect(paths({ image: 'app', privileged: true })).toEqual(['privileged']);
  });

  it('bound a snapshot part', () => {
    const c = { id: 'a'.repeat(64) };
    expect(ContainersSnapshotSchema.safeParse({ snapshotId: '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b', containers: Array(201).fill(c), last: true }).success).toBe(false);
  });
});
