/**
 * Writing a deployed file where the server asked, but only where this
 * machine's owner allows (threat model T21):
 *
 * - the target must be an absolute, normalised path (no `.`/`..` segments,
 *   no NUL, not ending in `/`);
 * - its parent directory must exist, and its real path (every symlink on the
 *   way resolved) must lie inside one of the allowed roots (each resolved
 *   too), so neither `..` nor a symlinked directory can lead outside;
 * - whatever is at the target now must be a regular file or nothing: a
 *   symlink planted there is refused (lstat: never followed), as is a
 *   directory or a device;
 * - the bytes go to a temporary file in the same directory, opened with
 *   O_CREAT | O_EXCL | O_NOFOLLOW (a name planted in the meantime makes the
 *   open fail instead of being followed), mode and owner set on the open
 *   descriptor, fsynced, then renamed over the target (rename replaces a
 *   symlink that appeared after the check; it never writes through it) and
 *   the directory fsynced. Readers see the old file or the new one, never a
 *   part.
 *
 * Limit: the roots themselves must not be writable by people the agent does
 * not trust — someone who can swap a directory inside a root between the
 * check and the rename could redirect the write within what they control.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';

/** A refusal or failure with a reason for the admin. */
export class DeployError extends Error {
  constructor(
    readonly code: 'outside_policy' | 'bad_path' | 'symlink' | 'not_a_file' | 'no_parent' | 'owner' | 'io',
    message: string,
  ) {
    super(message);
    this.name = 'DeployError';
  }
}

export interface DeployTarget {
  path: string;
  mode: number;
  /** `user` or `user:group`, names or numeric ids; null keeps the agent's own. */
  owner: string | null;
}

/** Resolves the allowed roots once (a root that does not exist allows nothing). */
export function resolveRoots(roots: readonly string[]): string[] {
  const out: string[] = [];
  for (const r of roots) {
    try {
      out.push(fs.realpathSync(r));
    } catch {
      // not there: nothing under it can be written
    }
  }
  return out;
}

const inside = (p: string, root: string): boolean => p === root || p.startsWith(root.endsWith('/') ? root : `${root}/`);

/** Where the file would be written, or why not; checks only (writeDeployed checks again). */
export function checkTarget(target: string, roots: readonly string[]): string {
  if (!target.startsWith('/') || target.includes('\0') || target.endsWith('/')) throw new DeployError('bad_path', `refused: ${JSON.stringify(target)} is not an absolute path to a file`);
  if (target.split('/').some((seg) => seg === '.' || seg === '..') || path.posix.normalize(target) !== target) {
    throw new DeployError('bad_path', `refused: ${JSON.stringify(target)} contains "." or ".." segments or repeated slashes`);
  }
  const real = resolveRoots(roots);
  if (!real.length) throw new DeployError('outside_policy', 'refused: this agent allows no deploy directory (set KAPITAN_AGENT_DEPLOY_DIRS)');
  const parent = path.dirname(target);
  let realParent: string;
  try {
    realParent = fs.realpathSync(parent);
  } catch {
    throw new DeployError('no_parent', `refused: the directory ${parent} does not exist on this machine`);
  }
  if (!real.some((root) => inside(realParent, root))) {
    const via = realParent === parent ? '' : ` (it resolves to ${realParent})`;
    throw new DeployError('outside_policy', `refused: ${parent}${via} is outside the directories this agent may write (KAPITAN_AGENT_DEPLOY_DIRS: ${roots.join(':')})`);
  }
  if (!fs.statSync(realParent).isDirectory()) throw new DeployError('no_parent', `refused: ${parent} is not a directory`);
  const final = path.join(realParent, path.basename(target));
  let st: fs.Stats | null = null;
  try {
    st = fs.lstatSync(final);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new DeployError('io', `cannot inspect ${target}: ${(err as Error).message}`);
  }
  if (st?.isSymbolicLink()) throw new DeployError('symlink', `refused: ${target} is a symbolic link; a deploy never writes through one`);
  if (st && !st.isFile()) throw new DeployError('not_a_file', `refused: ${target} exists and is not a regular file`);
  return final;
}

/** `user[:group]` → numeric ids, from /etc/passwd and /etc/group (or numbers as given). */
export function resolveOwner(owner: string, files = { passwd: '/etc/passwd', group: '/etc/group' }): { uid: number; gid: number } {
  const [user, group] = owner.split(':');
  const table = (file: string): string[][] => {
    try {
      return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => l.split(':'));
    } catch {
      return [];
    }
  };
  const passwd = table(files.passwd);
  const entry = /^\d+$/.test(user) ? passwd.find((p) => p[2] === user) ?? [user, '', user, String(process.getgid?.() ?? 0)] : passwd.find((p) => p[0] === user);
  if (!entry) throw new DeployError('owner', `no user ${user} on this machine`);
  const uid = Number(entry[2]);
  let gid = Number(entry[3]);
  if (group !== undefined) {
    if (/^\d+$/.test(group)) gid = Number(group);
    else {
      const g = table(files.group).find((x) => x[0] === group);
      if (!g) throw new DeployError('owner', `no group ${group} on this machine`);
      gid = Number(g[2]);
    }
  }
  return { uid, gid };
}

/** Copies `source` (a verified cache entry) to the target, atomically; see the module comment. */
export async function writeDeployed(source: string, target: DeployTarget, roots: readonly string[]): Promise<string> {
  const final = checkTarget(target.path, roots);
  const ids = target.owner ? resolveOwner(target.owner) : null;
  const dir = path.dirname(final);
  const temp = path.join(dir, `.${path.basename(final).slice(0, 100)}.kapitan-${randomBytes(6).toString('hex')}.tmp`);
  let fd: number;
  try {
    fd = fs.openSync(temp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    throw new DeployError('io', `cannot create a temporary file in ${path.dirname(target.path)}: ${(err as Error).message}`);
  }
  try {
    await pipeline(fs.createReadStream(source), fs.createWriteStream('', { fd, autoClose: false }));
    if (ids) {
      try {
        fs.fchownSync(fd, ids.uid, ids.gid);
      } catch (err) {
        throw new DeployError('owner', `cannot give ${target.path} to ${target.owner} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}; the agent runs as uid ${process.getuid?.()})`);
      }
    }
    // After chown: changing the owner clears set-id bits, and the mode is applied last as asked.
    fs.fchmodSync(fd, target.mode);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = -1;
    // The target may have become a symlink since the check: rename replaces the link itself, never its destination.
    fs.renameSync(temp, final);
  } catch (err) {
    if (fd >= 0) fs.closeSync(fd);
    fs.rmSync(temp, { force: true });
    if (err instanceof DeployError) throw err;
    throw new DeployError('io', `cannot write ${target.path}: ${(err as Error).message}`);
  }
  const dfd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(dfd);
  } finally {
    fs.closeSync(dfd);
  }
  return final;
}
