import { z } from 'zod';
import { checkExecutionWork, CreateDeployRequestSchema, CreateExecutionRequestSchema, DeliveryDispatchSchema, ExecutionWorkFields } from './index';

const id = '6f1c1b9e-8f55-4a55-9d2a-1f1b5c3e7a10';

describe('delivery and run-from-file schemas', () => {
  it('a run takes exactly one of script and fileId', () => {
    const targets = { all: true };
    expect(CreateExecutionRequestSchema.safeParse({ script: 'true', targets }).success).toBe(true);
    expect(CreateExecutionRequestSchema.safeParse({ fileId: id, targets }).success).toBe(true);
    const neither = CreateExecutionRequestSchema.safeParse({ targets });
    expect(neither.success ? [] : neither.error.issues.map((i) => i.path.join('.'))).toEqual(['script']);
    const both = CreateExecutionRequestSchema.safeParse({ script: 'true', fileId: id, targets });
    expect(both.success ? [] : both.error.issues.map((i) => i.path.join('.'))).toEqual(['fileId']);
  });

  it('the run fields compose into another request (a schedule) with the same rules', () => {
    const Schedule = z.strictObject({ ...ExecutionWorkFields, name: z.string(), cron: z.string() }).superRefine(checkExecutionWork);
    expect(Schedule.safeParse({ name: 'n', cron: '* * * * *', fileId: id, targets: { all: true } }).success).toBe(true);
    expect(Schedule.safeParse({ name: 'n', cron: '* * * * *', targets: { all: true } }).success).toBe(false);
  });

  it('deploy paths, modes and owners', () => {
    const base = { fileId: id, targets: { all: true } };
    const ok = CreateDeployRequestSchema.parse({ ...base, path: '/srv/app/a.conf', mode: '644', owner: 'www-data:www-data' });
    expect(ok.mode).toBe(0o644);
    for (const path of ['srv/a', '/srv/../a', '/srv/./a', '/srv/', '/a\0b']) expect(CreateDeployRequestSchema.safeParse({ ...base, path }).success).toBe(false);
    for (const mode of ['4755', '888', '0o644', '']) expect(CreateDeployRequestSchema.safeParse({ ...base, path: '/a', mode }).success).toBe(false);
    for (const owner of ['a b', 'a:b:c', '$(id)']) expect(CreateDeployRequestSchema.safeParse({ ...base, path: '/a', owner }).success).toBe(false);
  });

  it('a dispatch names its kind and carries what that kind needs', () => {
    const file = { fileId: id, sha256: 'a'.repeat(64), size: 1 };
    expect(DeliveryDispatchSchema.safeParse({ kind: 'distribution', deliveryId: id, file }).success).toBe(true);
    expect(DeliveryDispatchSchema.safeParse({ kind: 'deploy', deliveryId: id, file }).success).toBe(false);
    expect(DeliveryDispatchSchema.safeParse({ kind: 'deploy', deliveryId: id, file, path: '/a', mode: 0o7777, owner: null }).success).toBe(false);
  });
});
