import { z } from 'zod';
import {
  checkExecutionWork,
  CreateDeployRequestSchema,
  CreateExecutionRequestSchema,
  DeliveryDispatchSchema,
  DeliveryTransferSchema,
  describeTransfer,
  ExecutionWorkFields,
  IMAGE_INDEX_LIMITS,
  ImageIndexSchema,
} from './index';

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

describe('layer index and transfer', () => {
  const d = (c: string) => `sha256:${c.repeat(64)}`;
  const index = {
    fileId: id,
    sha256: 'a'.repeat(64),
    size: 10_000,
    format: 'docker-save',
    manifest: { name: 'manifest.json', offset: 512, size: 100, sha256: 'b'.repeat(64) },
    config: { name: `${'c'.repeat(64)}.json`, offset: 1024, size: 200, digest: d('c') },
    layers: [{ name: `${'e'.repeat(64)}/layer.tar`, offset: 2048, size: 4096, diffId: d('e') }],
  };

  it('an index whose spans stay inside the tarball is accepted; past its end, oversized metadata or a bad digest is refused, naming where', () => {
    expect(ImageIndexSchema.safeParse(index).success).toBe(true);
    const issue = (x: unknown) => {
      const r = ImageIndexSchema.safeParse(x);
      return r.success ? null : r.error.issues[0].path.join('.');
    };
    expect(issue({ ...index, layers: [{ ...index.layers[0], offset: 9000 }] })).toBe('layers.0');
    expect(issue({ ...index, size: 1_000_000_000, config: { ...index.config, size: IMAGE_INDEX_LIMITS.metadataBytesMax + 1 } })).toBe('config');
    expect(issue({ ...index, config: { ...index.config, digest: 'sha256:xyz' } })).toBe('config.digest');
    expect(issue({ ...index, layers: [{ ...index.layers[0], name: 'a\0b' }] })).toBe('layers.0.name');
    expect(issue({ ...index, extra: 1 })).toBe('');
  });

  it('a transfer never has more layers present than the image has; the dashboard line says what moved', () => {
    expect(DeliveryTransferSchema.safeParse({ movedBytes: 1, layers: { present: 3, total: 2 } }).success).toBe(false);
    expect(DeliveryTransferSchema.safeParse({ movedBytes: -1, layers: null }).success).toBe(false);
    expect(describeTransfer({ movedBytes: null, layers: null, totalBytes: 10 })).toBeNull();
    expect(describeTransfer({ movedBytes: 12 * 1024 * 1024, layers: { present: 3, total: 4 }, totalBytes: 210 * 1024 * 1024 })).toBe('moved 12.0 MiB of 210.0 MiB, 3 of 4 layers present');
    expect(describeTransfer({ movedBytes: 0, layers: null, totalBytes: 2048 })).toBe('moved 0 B of 2.0 KiB');
  });
});
