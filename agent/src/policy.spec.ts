import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ReportedPolicySchema } from '@kapitan/shared';
import { globMatch, imageAllowed, loadPolicy, normaliseImageRef, parsePolicy, PolicyFileError, PolicyGuard, policyPath, underPrefix } from './policy';
import { tmpDir } from './test-support/wait';

const sha = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');
const ROOTS = ['/var/lib/kapitan-agent/deploys'];

describe('loadPolicy: the file, its owner and mode, its format', () => {
  let dir: string;
  let file: string;
  const write = (text: string, mode = 0o644) => {
    fs.writeFileSync(file, text);
    fs.chmodSync(file, mode);
  };
  beforeEach(() => {
    dir = tmpDir('kapitan-policy-');
    fs.chmodSync(dir, 0o755);
    file = path.join(dir, 'agent-policy.json');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('no file: everything allowed, reported as no policy file, deploys under the agent roots', () => {
    const r = loadPolicy(file, ROOTS, { uid: 0 });
    expect(r).toEqual({
      path: file,
      found: false,
      sha256: null,
      effective: { scripts: { enabled: true, allowSha256: null }, deploys: { enabled: true, pathPrefixes: ROOTS }, docker: { enabled: true, images: null }, readOnly: false },
    });
    expect(ReportedPolicySchema.parse(r)).toEqual(r);
  });

  it('a file the agent cannot change: read, hashed, defaults filled in', () => {
    const text = JSON.stringify({ scripts: { allowSha256: [sha('echo hi\n')] }, docker: { enabled: false }, deploys: { pathPrefixes: ['/opt/app/'] } });
    write(text);
    const r = loadPolicy(file, ROOTS, { uid: 0 });
    expect(r.found).toBe(true);
    expect(r.sha256).toBe(createHash('sha256').update(text).digest('hex'));
    expect(r.effective).toEqual({
      scripts: { enabled: true, allowSha256: [sha('echo hi\n')] },
      deploys: { enabled: true, pathPrefixes: ['/opt/app/'] },
      docker: { enabled: false, images: null },
      readOnly: false,
    });
    expect(ReportedPolicySchema.parse(r)).toEqual(r);
    // An agent of another (non-root) user: a root-owned file is just as safe.
    expect(loadPolicy(file, ROOTS, { uid: 4242 }).found).toBe(true);
  });

  it.each([
    ['writable by others', 0o666, /writable by group or others \(mode 0666\)/],
    ['writable by its group', 0o664, /writable by group or others \(mode 0664\)/],
    ['writable by others only', 0o602, /writable by group or others/],
  ])('a file %s: refused, the path named', (_what, mode, message) => {
    write('{}', mode);
    const err = catchError(() => loadPolicy(file, ROOTS, { uid: 0 }));
    expect(err).toBeInstanceOf(PolicyFileError);
    expect(err.message).toContain(file);
    expect(err.message).toMatch(message);
  });

  it("a file owned by the agent's own (non-root) user: refused, it could chmod it back; the same file is fine for a root agent", () => {
    write('{}', 0o644);
    fs.chownSync(file, 4242, 4242);
    expect(() => loadPolicy(file, ROOTS, { uid: 4242 })).toThrow(/owned by the agent's own user \(uid 4242\)/);
    expect(loadPolicy(file, ROOTS, { uid: 0 }).found).toBe(true);
  });

  it('a directory others may write (the file could be replaced), or owned by the agent: refused', () => {
    write('{}');
    fs.chmodSync(dir, 0o777);
    expect(() => loadPolicy(file, ROOTS, { uid: 0 })).toThrow(new RegExp(`its directory ${dir} is writable by group or others`));
    fs.chmodSync(dir, 0o755);
    fs.chownSync(dir, 4242, 4242);
    expect(() => loadPolicy(file, ROOTS, { uid: 4242 })).toThrow(/its directory .* is owned by the agent's own user/);
  });

  it('not a regular file, or unreadable: refused', () => {
    fs.mkdirSync(file);
    expect(() => loadPolicy(file, ROOTS, { uid: 0 })).toThrow(/is not a regular file/);
  });

  it('a symlink: the file it names and both directories are checked; a link to nothing is refused, not "no file"', () => {
    const real = path.join(dir, 'real');
    fs.mkdirSync(real, { mode: 0o755 });
    fs.writeFileSync(path.join(real, 'p.json'), '{"readOnly": true}', { mode: 0o644 });
    const links = path.join(dir, 'links');
    fs.mkdirSync(links, { mode: 0o755 });
    const link = path.join(links, 'agent-policy.json');
    fs.symlinkSync(path.join(real, 'p.json'), link);
    expect(loadPolicy(link, ROOTS, { uid: 0 }).effective.readOnly).toBe(true);
    fs.chmodSync(links, 0o777); // the link could be pointed elsewhere
    expect(() => loadPolicy(link, ROOTS, { uid: 0 })).toThrow(new RegExp(`its directory ${links} is writable by group or others`));
    fs.chmodSync(links, 0o755);
    fs.chmodSync(real, 0o777);
    expect(() => loadPolicy(link, ROOTS, { uid: 0 })).toThrow(new RegExp(`its directory ${real} is writable by group or others`));
    fs.chmodSync(real, 0o755);
    fs.rmSync(path.join(real, 'p.json'));
    expect(() => loadPolicy(link, ROOTS, { uid: 0 })).toThrow(/is a symbolic link to nothing/);
  });

  it('too large: refused', () => {
    write(`{"readOnly": false${' '.repeat(70_000)}}`);
    expect(() => loadPolicy(file, ROOTS, { uid: 0 })).toThrow(/larger than 65536 bytes/);
  });

  it.each([
    ['not JSON', '{ "readOnly": true, }', /is not valid JSON/],
    ['a comment', '// all on\n{}', /is not valid JSON/],
    ['an array', '[]', /\(top level\)/],
    ['an unknown top-level key', '{ "readonly": true }', /\(top level\): .*"readonly"/],
    ['an unknown nested key (a typo that would allow what it meant to forbid)', '{ "scripts": { "enable": false } }', /scripts: .*"enable"/],
    ['a wrong type', '{ "docker": { "enabled": "no" } }', /docker\.enabled: /],
    ['a bad sha256', '{ "scripts": { "allowSha256": ["ABC"] } }', /scripts\.allowSha256\.0: a sha256/],
    ['a relative prefix', '{ "deploys": { "pathPrefixes": ["opt/app"] } }', /deploys\.pathPrefixes\.0: an absolute directory/],
    ['a prefix with ..', '{ "deploys": { "pathPrefixes": ["/opt/../etc"] } }', /deploys\.pathPrefixes\.0: must not contain/],
  ])('%s: refused with the path in the file named', (_what, text, message) => {
    write(text);
    const err = catchError(() => loadPolicy(file, ROOTS, { uid: 0 }));
    expect(err).toBeInstanceOf(PolicyFileError);
    expect(err.message).toContain(file);
    expect(err.message).toMatch(message);
  });

  it("the README's example is a valid policy (its placeholder filled in)", () => {
    const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
    const m = /### Client policy[\s\S]*?```json\n([\s\S]*?)```/.exec(readme);
    expect(m).not.toBeNull();
    const text = m![1].replace('<64 lower-case hex digits>', sha('echo hi\n'));
    expect(parsePolicy('README.md', text)).toEqual({
      scripts: { enabled: true, allowSha256: [sha('echo hi\n')] },
      deploys: { enabled: true, pathPrefixes: ['/opt/app/'] },
      docker: { enabled: true, images: ['busybox:*', 'registry.example.com/app/*'] },
      readOnly: false,
    });
  });

  it('KAPITAN_AGENT_POLICY_FILE names the file; relative paths refused; default /etc/kapitan/agent-policy.json', () => {
    expect(policyPath({})).toBe('/etc/kapitan/agent-policy.json');
    expect(policyPath({ KAPITAN_AGENT_POLICY_FILE: '/srv/p.json' })).toBe('/srv/p.json');
    expect(() => policyPath({ KAPITAN_AGENT_POLICY_FILE: 'p.json' })).toThrow(/must be an absolute path/);
  });
});

describe('the matchers', () => {
  it('glob: * spans any characters, nothing else is special', () => {
    expect(globMatch('busybox:*', 'busybox:1.36')).toBe(true);
    expect(globMatch('registry.example.com/app/*', 'registry.example.com/app/web:1')).toBe(true);
    expect(globMatch('registry.example.com/app/*', 'registry.example.com/apps/web:1')).toBe(false);
    expect(globMatch('busybox:1.?', 'busybox:1.3')).toBe(false);
    expect(globMatch('a.b', 'aXb')).toBe(false);
    expect(globMatch('busybox:*', 'evil/busybox:1')).toBe(false);
  });

  it('an image without a tag is matched as :latest; digests as written', () => {
    expect(normaliseImageRef('busybox')).toBe('busybox:latest');
    expect(normaliseImageRef('localhost:5000/app')).toBe('localhost:5000/app:latest');
    expect(normaliseImageRef('localhost:5000/app:2')).toBe('localhost:5000/app:2');
    expect(normaliseImageRef('busybox@sha256:abc')).toBe('busybox@sha256:abc');
    expect(imageAllowed(['busybox:*'], 'busybox')).toBe(true);
    expect(imageAllowed(['busybox:1.36'], 'busybox')).toBe(false);
    expect(imageAllowed(null, 'anything')).toBe(true);
    expect(imageAllowed([], 'busybox')).toBe(false);
  });

  it('a path prefix is a directory: its siblings with a longer name do not match', () => {
    expect(underPrefix('/opt/app/x.conf', '/opt/app/')).toBe(true);
    expect(underPrefix('/opt/app/x.conf', '/opt/app')).toBe(true);
    expect(underPrefix('/opt/application/x', '/opt/app')).toBe(false);
    expect(underPrefix('/opt/application/x', '/opt/app/')).toBe(false);
    expect(underPrefix('/etc/passwd', '/')).toBe(true);
  });
});

describe('PolicyGuard', () => {
  const guard = (p: object, found = true) =>
    new PolicyGuard({
      path: '/etc/kapitan/agent-policy.json',
      found,
      sha256: null,
      effective: {
        scripts: { enabled: true, allowSha256: null },
        deploys: { enabled: true, pathPrefixes: ['/opt/app/'] },
        docker: { enabled: true, images: null },
        readOnly: false,
        ...p,
      },
    });

  it('no rules: nothing refused', () => {
    const g = guard({}, false);
    expect(g.script('echo hi')).toBeNull();
    expect(g.deploy('/opt/app/a')).toBeNull();
    // outside the default prefixes (the deploy dirs): left to the deploy writer, which fails it as before policies existed
    expect(g.deploy('/etc/passwd')).toBeNull();
    expect(g.imageLoad(['x:1'])).toBeNull();
    expect(g.container('create', 'x')).toBeNull();
    expect(g.container('stop', null)).toBeNull();
  });

  it('scripts: disabled, or only allowed hashes of the exact text', () => {
    expect(guard({ scripts: { enabled: false, allowSha256: null } }).script('true')).toMatch(/^refused by the client policy \(\/etc\/kapitan\/agent-policy.json\): scripts are disabled/);
    const g = guard({ scripts: { enabled: true, allowSha256: [sha('echo ok\n')] } });
    expect(g.script('echo ok\n')).toBeNull();
    expect(g.script('echo ok')).toBe(`refused by the client policy (/etc/kapitan/agent-policy.json): the script's sha256 ${sha('echo ok')} is not in scripts.allowSha256`);
  });

  it('deploys: checked on the normalised path and on where its directory really is', () => {
    const dir = tmpDir('kapitan-policy-deploy-');
    try {
      const inside = path.join(dir, 'allowed');
      fs.mkdirSync(inside);
      const outside = path.join(dir, 'outside');
      fs.mkdirSync(outside);
      fs.symlinkSync(outside, path.join(inside, 'link'));
      const g = guard({ deploys: { enabled: true, pathPrefixes: [`${inside}/`] } });
      expect(g.deploy(`${inside}/a.conf`)).toBeNull();
      expect(g.deploy(`${inside}/../outside/a.conf`)).toMatch(/outside\/a.conf is outside deploys.pathPrefixes/);
      expect(g.deploy(`${inside}/link/a.conf`)).toMatch(new RegExp(`it resolves to ${outside}/a.conf`));
      expect(g.deploy('/etc/passwd')).toMatch(/\/etc\/passwd is outside deploys.pathPrefixes/);
      expect(guard({ deploys: { enabled: false, pathPrefixes: ['/'] } }).deploy('/opt/app/a')).toMatch(/deploys are disabled/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('docker: disabled refuses loads and every container action; image patterns apply to create and to load tags', () => {
    const off = guard({ docker: { enabled: false, images: null } });
    expect(off.imageLoad(null)).toMatch(/docker is disabled/);
    for (const kind of ['create', 'start', 'stop', 'restart', 'remove']) expect(off.container(kind, null)).toMatch(/docker is disabled/);
    const some = guard({ docker: { enabled: true, images: ['busybox:*'] } });
    expect(some.container('create', 'busybox')).toBeNull();
    expect(some.container('create', 'alpine:3')).toMatch(/image alpine:3 does not match docker.images \(busybox:\*\)/);
    expect(some.container('stop', null)).toBeNull();
    expect(some.imageLoad(null)).toBeNull();
    expect(some.imageLoad(['busybox:1.36'])).toBeNull();
    expect(some.imageLoad(['busybox:1.36', 'evil:1'])).toMatch(/image evil:1 does not match/);
    expect(some.imageLoad([])).toMatch(/names no tag/);
  });

  it('readOnly: nothing that changes the machine', () => {
    const g = guard({ readOnly: true });
    expect(g.script('true')).toMatch(/readOnly is set: no scripts/);
    expect(g.deploy('/opt/app/a')).toMatch(/readOnly is set: no deploys/);
    expect(g.imageLoad(null)).toMatch(/readOnly is set: no image loads/);
    expect(g.container('restart', null)).toMatch(/readOnly is set: no container restart/);
  });
});

function catchError(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}
