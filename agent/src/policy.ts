/**
 * The client policy (threat model T71–T74): a JSON file the machine's owner
 * writes, read once at start, that bounds what this agent does whatever the
 * server sends. A file the agent's own user could change would bound
 * nothing (a compromised server's script could rewrite it), so such a file
 * makes the agent refuse to start, as does a file that does not parse.
 *
 * Rules for the file (and its directory), checked on the opened descriptor:
 * - a regular file (after symlinks), at most POLICY_LIMITS.fileMax bytes;
 * - neither it nor its directory writable by group or others (the agent
 *   cannot tell cheaply whether a group includes it, so any such bit is
 *   refused: the strict reading is the testable one when the agent is root);
 * - when the agent is not root: neither owned by the agent's uid (an owner
 *   can chmod it back to writable).
 * No file at the path: everything is allowed and reported as "no policy file".
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  AGENT_POLICY_FILE_ENV,
  AgentPolicySchema,
  DEFAULT_AGENT_POLICY_FILE,
  POLICY_LIMITS,
  type AgentPolicy,
  type EffectivePolicy,
  type ReportedPolicy,
} from '@kapitan/shared';

/** The policy file is unsafe or invalid: `kapitan-agent run` exits with EXIT_POLICY. */
export class PolicyFileError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`client policy ${file}: ${message}`);
    this.name = 'PolicyFileError';
  }
}

export interface PolicyLoadOptions {
  /** The agent's uid (default process.getuid()). */
  uid?: number;
}

export function policyPath(env: NodeJS.ProcessEnv = process.env): string {
  const p = env[AGENT_POLICY_FILE_ENV]?.trim();
  if (!p) return DEFAULT_AGENT_POLICY_FILE;
  if (!p.startsWith('/')) throw new PolicyFileError(p, `${AGENT_POLICY_FILE_ENV} must be an absolute path`);
  return p;
}

/** Fills the defaults: absent lists mean "any" (scripts, images) or the agent's deploy roots. */
export function effectivePolicy(p: AgentPolicy, deployRoots: readonly string[]): EffectivePolicy {
  return {
    scripts: { enabled: p.scripts?.enabled ?? true, allowSha256: p.scripts?.allowSha256 ?? null },
    deploys: { enabled: p.deploys?.enabled ?? true, pathPrefixes: p.deploys?.pathPrefixes ?? [...deployRoots] },
    docker: { enabled: p.docker?.enabled ?? true, images: p.docker?.images ?? null },
    readOnly: p.readOnly ?? false,
  };
}

const unsafeStat = (what: string, st: fs.Stats, uid: number): string | null => {
  if ((st.mode & 0o022) !== 0) return `${what} is writable by group or others (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')}); make it writable by its owner only (chmod go-w)`;
  if (uid !== 0 && st.uid === uid) return `${what} is owned by the agent's own user (uid ${uid}), which could change it; make root own it (chown root:root)`;
  return null;
};

/**
 * Reads and checks the policy file. Throws PolicyFileError (path named) when
 * it is unsafe, unreadable or invalid; returns "no policy file" when absent.
 */
export function loadPolicy(file: string, deployRoots: readonly string[], options: PolicyLoadOptions = {}): ReportedPolicy {
  const uid = options.uid ?? process.getuid?.() ?? 0;
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      // A link to nothing is not "no file": someone meant a policy to be there.
      if (fs.lstatSync(file, { throwIfNoEntry: false })?.isSymbolicLink()) throw new PolicyFileError(file, 'is a symbolic link to nothing');
      return { path: file, found: false, sha256: null, effective: effectivePolicy({}, deployRoots) };
    }
    throw new PolicyFileError(file, `cannot be read (${code ?? (e as Error).message})`);
  }
  let bytes: Buffer;
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new PolicyFileError(file, 'is not a regular file');
    const fileProblem = unsafeStat('the file', st, uid);
    if (fileProblem) throw new PolicyFileError(file, fileProblem);
    // The directory too (the named one and, through a symlink, the real one): whoever may write it may replace the file.
    for (const dir of new Set([path.dirname(path.resolve(file)), path.dirname(fs.realpathSync(file))])) {
      const dirProblem = unsafeStat(`its directory ${dir}`, fs.statSync(dir), uid);
      if (dirProblem) throw new PolicyFileError(file, dirProblem);
    }
    if (st.size > POLICY_LIMITS.fileMax) throw new PolicyFileError(file, `is larger than ${POLICY_LIMITS.fileMax} bytes`);
    bytes = Buffer.alloc(st.size);
    let off = 0;
    while (off < st.size) {
      const n = fs.readSync(fd, bytes, off, st.size - off, off);
      if (n === 0) break;
      off += n;
    }
    bytes = bytes.subarray(0, off);
  } finally {
    fs.closeSync(fd);
  }
  return { path: file, found: true, sha256: createHash('sha256').update(bytes).digest('hex'), effective: effectivePolicy(parsePolicy(file, bytes.toString('utf8')), deployRoots) };
}

/** The file's text → its policy; throws PolicyFileError naming the first problems and their paths. */
export function parsePolicy(file: string, text: string): AgentPolicy {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new PolicyFileError(file, `is not valid JSON (${(e as Error).message})`);
  }
  const r = AgentPolicySchema.safeParse(raw);
  if (!r.success) {
    const problems = r.error.issues.slice(0, 5).map((i) => {
      const where = i.path.length ? i.path.join('.') : '(top level)';
      const keys = i.code === 'unrecognized_keys' ? ` ${i.keys.map((k) => JSON.stringify(k)).join(', ')}` : '';
      return `${where}: ${i.message}${keys}`;
    });
    throw new PolicyFileError(file, `does not match the policy format: ${problems.join('; ')}`);
  }
  return r.data;
}

// ---------------------------------------------------------------- matchers

/** `*` matches any run of characters; everything else literally. */
export function globMatch(pattern: string, value: string): boolean {
  const re = new RegExp(`^${pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 's');
  return re.test(value);
}

/** `busybox` is `busybox:latest` to Docker: match what will be used, not how it was spelt. */
export function normaliseImageRef(ref: string): string {
  if (ref.includes('@')) return ref;
  const lastSlash = ref.lastIndexOf('/');
  return ref.slice(lastSlash + 1).includes(':') ? ref : `${ref}:latest`;
}

export function imageAllowed(images: readonly string[] | null, ref: string): boolean {
  if (images === null) return true;
  const norm = normaliseImageRef(ref);
  return images.some((p) => globMatch(p, norm) || globMatch(p, ref));
}

/** A directory prefix matches itself and what lies below it, never a sibling that shares its spelling (`/opt/app` ≠ `/opt/application`). */
export function underPrefix(target: string, prefix: string): boolean {
  const dir = prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  return target === dir || target.startsWith(dir === '/' ? '/' : `${dir}/`);
}

export const scriptSha256 = (script: string): string => createHash('sha256').update(script, 'utf8').digest('hex');

/** Why the policy refuses, or null. Every check is a pure function of the effective policy and the request. */
export class PolicyGuard {
  constructor(private current: ReportedPolicy) {}

  /** What is enforced now, as reported in the hello. */
  get reported(): ReportedPolicy {
    return this.current;
  }

  /** A reload (SIGHUP) that read a safe, valid file: enforced from the next check on. */
  replace(next: ReportedPolicy): void {
    this.current = next;
  }

  get policy(): EffectivePolicy {
    return this.reported.effective;
  }

  private refusal(rule: string): string {
    const source = this.reported.found ? this.reported.path : 'defaults';
    return `refused by the client policy (${source}): ${rule}`;
  }

  script(script: string): string | null {
    if (this.policy.readOnly) return this.refusal('readOnly is set: no scripts run on this machine');
    if (!this.policy.scripts.enabled) return this.refusal('scripts are disabled (scripts.enabled: false)');
    const allow = this.policy.scripts.allowSha256;
    if (allow !== null) {
      const sha = scriptSha256(script);
      if (!allow.includes(sha)) return this.refusal(`the script's sha256 ${sha} is not in scripts.allowSha256`);
    }
    return null;
  }

  /**
   * `target` normalised (posix) with its directory's real path (symlinks
   * resolved, when it exists): a prefix is checked against where the write
   * would land, not against how the path was spelt.
   */
  deploy(target: string): string | null {
    if (this.policy.readOnly) return this.refusal('readOnly is set: no deploys on this machine');
    if (!this.policy.deploys.enabled) return this.refusal('deploys are disabled (deploys.enabled: false)');
    // No file: nothing is refused by policy; the deploy writer still keeps every write inside the deploy directories (its own failure).
    if (!this.reported.found) return null;
    const normal = path.posix.normalize(target);
    let real = normal;
    try {
      real = path.join(fs.realpathSync(path.dirname(normal)), path.basename(normal));
    } catch {
      // no such directory: the writer refuses it anyway; check the spelling
    }
    const prefixes = this.policy.deploys.pathPrefixes;
    // A prefix that is itself a symlink (/tmp on some systems) must still match the real path below it.
    const resolved = prefixes.flatMap((prefix) => {
      try {
        return [prefix, fs.realpathSync(prefix)];
      } catch {
        return [prefix];
      }
    });
    const ok = (p: string, list: readonly string[]) => list.some((prefix) => underPrefix(p, prefix));
    if (!ok(normal, prefixes) || !ok(real, resolved)) {
      const via = real === normal ? '' : ` (it resolves to ${real})`;
      return this.refusal(`${normal}${via} is outside deploys.pathPrefixes (${prefixes.join(', ') || 'none'})`);
    }
    return null;
  }

  /** Loading a tarball naming `repoTags` (from its manifest.json); null: only what can be told before the download. */
  imageLoad(repoTags: readonly string[] | null): string | null {
    if (this.policy.readOnly) return this.refusal('readOnly is set: no image loads on this machine');
    if (!this.policy.docker.enabled) return this.refusal('docker is disabled (docker.enabled: false)');
    const images = this.policy.docker.images;
    if (images === null || repoTags === null) return null;
    if (!repoTags.length) return this.refusal('the image tarball names no tag (RepoTags), and docker.images allows only named images');
    const bad = repoTags.filter((t) => !imageAllowed(images, t));
    if (bad.length) return this.refusal(`image ${bad.join(', ')} does not match docker.images (${images.join(', ')})`);
    return null;
  }

  /** A container operation; `image` for create. */
  container(kind: string, image: string | null): string | null {
    if (this.policy.readOnly) return this.refusal(`readOnly is set: no container ${kind} on this machine`);
    if (!this.policy.docker.enabled) return this.refusal('docker is disabled (docker.enabled: false)');
    if (image !== null && !imageAllowed(this.policy.docker.images, image)) {
      return this.refusal(`image ${image} does not match docker.images (${this.policy.docker.images!.join(', ')})`);
    }
    return null;
  }
}

/** No file, no rules: what in-memory agents (tests, simulated) enforce unless given a policy. */
export const allowAllPolicy = (deployRoots: readonly string[] = [], file = DEFAULT_AGENT_POLICY_FILE): ReportedPolicy => ({
  path: file,
  found: false,
  sha256: null,
  effective: effectivePolicy({}, deployRoots),
});
