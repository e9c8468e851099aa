/**
 * Test images without a registry. No registry is reachable from the machines
 * the tests run on, so every image a test needs is made here: a root
 * filesystem holding Debian's static busybox, `docker import`ed under a tag,
 * and, when a test needs the tarball an operator would upload, `docker save`d.
 *
 * Each image gets a marker file with its own content, so two tags built by
 * `buildBusyboxImage` with different `marker`s have different layers (and
 * ids), which is what a test of "the loaded image is the one sent" needs.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where Debian's `busybox-static` package puts its binary. */
export const BUSYBOX_STATIC = '/usr/bin/busybox';

/** The applets test containers use; each becomes a symlink to busybox. */
const APPLETS = ['sh', 'sleep', 'echo', 'cat', 'ls', 'env', 'true', 'false', 'httpd', 'wget', 'nc', 'kill', 'ps', 'date', 'yes', 'head', 'touch', 'test', 'id'];

/**
 * Why Docker cannot be used by a test right now, or null when it can: the
 * engine answers (`docker info`) and the static busybox is installed.
 */
export async function dockerUnavailableReason(): Promise<string | null> {
  try {
    await run('docker', ['info', '--format', '{{.ServerVersion}}'], { timeout: 15_000 });
  } catch (err) {
    return `no Docker engine answers \`docker info\` (${firstLine(err)})`;
  }
  if (!(await isStaticBusybox(BUSYBOX_STATIC))) return `${BUSYBOX_STATIC} is missing or not static (install Debian's busybox-static)`;
  return null;
}

export interface BuiltImage {
  /** The tag the image was imported under, e.g. `kapitan-test/busybox:abc`. */
  tag: string;
  /** The image id (`sha256:…`), the config digest the engine reports. */
  id: string;
}

/**
 * Imports a busybox root filesystem as `tag` (CMD sleeps forever, so a
 * container from it keeps running until stopped). `marker` is written to
 * /kapitan-marker inside the image and makes its layer unique.
 */
export async function buildBusyboxImage(tag: string, marker: string = tag): Promise<BuiltImage> {
  const root = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'kapitan-rootfs-'));
  try {
    await fs.promises.mkdir(path.join(root, 'bin'));
    await fs.promises.mkdir(path.join(root, 'tmp'), { mode: 0o1777 });
    await fs.promises.copyFile(BUSYBOX_STATIC, path.join(root, 'bin', 'busybox'));
    await fs.promises.chmod(path.join(root, 'bin', 'busybox'), 0o755);
    for (const applet of APPLETS) await fs.promises.symlink('busybox', path.join(root, 'bin', applet));
    await fs.promises.writeFile(path.join(root, 'kapitan-marker'), `${marker}\n`);
    const tarball = path.join(root, '..', `${path.basename(root)}.tar`);
    await run('tar', ['-C', root, '-cf', tarball, '.']);
    try {
      const { stdout } = await run('docker', ['import', '-c', 'CMD ["/bin/sleep", "2147483647"]', '-c', 'ENV PATH=/bin', tarball, tag], { timeout: 60_000 });
      return { tag, id: stdout.trim() };
    } finally {
      await fs.promises.rm(tarball, { force: true });
    }
  } finally {
    await fs.promises.rm(root, { recursive: true, force: true });
  }
}

/**
 * An image of two layers or more: `base` (a local image, e.g. from
 * buildBusyboxImage) plus one layer holding /kapitan-app with `content`,
 * built by the classic builder (no registry, no BuildKit), so it shares
 * every layer of `base` and differs only in its top one.
 */
export async function buildLayeredImage(tag: string, base: string, content: string | Buffer): Promise<BuiltImage> {
  const ctx = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'kapitan-build-'));
  try {
    await fs.promises.writeFile(path.join(ctx, 'app'), content);
    await fs.promises.writeFile(path.join(ctx, 'Dockerfile'), `FROM ${base}\nCOPY app /kapitan-app\n`);
    await run('docker', ['build', '-q', '-t', tag, ctx], { timeout: 120_000, env: { ...process.env, DOCKER_BUILDKIT: '0' } });
    const id = await imageId(tag);
    if (!id) throw new Error(`docker build made no image ${tag}`);
    return { tag, id };
  } finally {
    await fs.promises.rm(ctx, { recursive: true, force: true });
  }
}

/** The diffIDs of a local image's layers, bottom first (`RootFS.Layers`). */
export async function imageLayers(ref: string): Promise<string[]> {
  const { stdout } = await run('docker', ['image', 'inspect', '--format', '{{json .RootFS.Layers}}', ref], { timeout: 30_000 });
  return JSON.parse(stdout) as string[];
}

/** `docker save` of `tag` into `file`: the tarball an operator uploads as kind `image`. */
export async function saveImage(tag: string, file: string): Promise<void> {
  await run('docker', ['save', '-o', file, tag], { timeout: 120_000 });
}

/** Removes images by tag or id; missing ones are not an error. */
export async function removeImages(...refs: string[]): Promise<void> {
  if (!refs.length) return;
  await run('docker', ['image', 'rm', '--force', ...refs], { timeout: 60_000 }).catch(() => undefined);
}

/** The id of `ref` in the local engine, or null when the engine has no such image. */
export async function imageId(ref: string): Promise<string | null> {
  try {
    const { stdout } = await run('docker', ['image', 'inspect', '--format', '{{.Id}}', ref], { timeout: 30_000 });
    return stdout.trim();
  } catch {
    return null;
  }
}

async function isStaticBusybox(file: string): Promise<boolean> {
  try {
    const head = Buffer.alloc(4096);
    const fd = await fs.promises.open(file, 'r');
    try {
      await fd.read(head, 0, head.length, 0);
    } finally {
      await fd.close();
    }
    // A dynamic ELF names its interpreter (PT_INTERP → "/lib64/ld-linux…") near the start.
    return head.subarray(0, 4).toString('latin1') === '\x7fELF' && !head.includes('ld-linux');
  } catch {
    return false;
  }
}

function firstLine(err: unknown): string {
  const e = err as { stderr?: string; message?: string };
  return (e.stderr || e.message || String(err)).trim().split('\n')[0];
}
