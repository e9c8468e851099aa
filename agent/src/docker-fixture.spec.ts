import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { buildBusyboxImage, dockerUnavailableReason, imageId, removeImages, saveImage } from './docker-fixture';

const isCI = /^(1|true|yes)$/i.test(process.env.CI ?? '');

describe('docker fixture (real engine)', () => {
  let reason: string | null = null;
  beforeAll(async () => {
    reason = await dockerUnavailableReason();
    if (reason && isCI) throw new Error(`Docker unavailable under CI=true: ${reason}`);
    if (reason) process.stderr.write(`[agent] SKIP (local run only) — ${reason}\n`);
  });

  it('builds distinct runnable images and saves a loadable tarball', async () => {
    if (reason) return;
    const suffix = `${process.pid}-${Date.now()}`;
    const a = await buildBusyboxImage(`kapitan-test/fixture:a-${suffix}`, 'a');
    const b = await buildBusyboxImage(`kapitan-test/fixture:b-${suffix}`, 'b');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kapitan-fixture-'));
    try {
      expect(a.id).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(a.id).not.toBe(b.id);
      expect(await imageId(a.tag)).toBe(a.id);
      const out = execFileSync('docker', ['run', '--rm', a.tag, 'cat', '/kapitan-marker'], { encoding: 'utf8' });
      expect(out).toBe('a\n');

      const tarball = path.join(dir, 'a.tar');
      await saveImage(a.tag, tarball);
      await removeImages(a.tag);
      expect(await imageId(a.tag)).toBeNull();
      execFileSync('docker', ['load', '-i', tarball]);
      expect(await imageId(a.tag)).toBe(a.id);
    } finally {
      await removeImages(a.tag, b.tag);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
