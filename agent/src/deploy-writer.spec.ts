import * as fs from 'node:fs';
import * as path from 'node:path';
import { DeployError, resolveOwner, writeDeployed } from './deploy-writer';
import { tmpDir } from './test-support/wait';

describe('writeDeployed: atomic writes, only inside the allowed roots (threat model T21)', () => {
  let base: string;
  let root: string;
  let outside: string;
  let source: string;
  beforeEach(() => {
    base = tmpDir();
    root = path.join(base, 'root');
    outside = path.join(base, 'outside');
    fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
    fs.mkdirSync(outside);
    source = path.join(base, 'source');
    fs.writeFileSync(source, 'new content\n');
  });
  afterEach(() => fs.rmSync(base, { recursive: true, force: true }));

  const leftovers = (dir: string) => fs.readdirSync(dir).filter((n) => n.includes('.kapitan-'));
  const refused = async (target: string, code: DeployError['code'], roots = [root]) => {
    const err = await writeDeployed(source, { path: target, mode: 0o644, owner: null }, roots).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DeployError);
    expect((err as DeployError).code).toBe(code);
    return err as DeployError;
  };

  it('writes the file with its mode, replacing what was there atomically and leaving no temporary file', async () => {
    const target = path.join(root, 'etc', 'app.conf');
    fs.writeFileSync(target, 'old\n');
    const seen = fs.openSync(target, 'r');
    await writeDeployed(source, { path: target, mode: 0o640, owner: null }, [root]);
    expect(fs.readFileSync(target, 'utf8')).toBe('new content\n');
    expect(fs.statSync(target).mode & 0o777).toBe(0o640);
    // A reader holding the old file still reads it whole: the new one replaced it by rename, not by rewriting.
    expect(fs.readFileSync(seen, 'utf8')).toBe('old\n');
    fs.closeSync(seen);
    expect(leftovers(path.join(root, 'etc'))).toEqual([]);
  });

  it('a symlink planted at the target is refused and its destination untouched', async () => {
    const victim = path.join(outside, 'passwd');
    fs.writeFileSync(victim, 'precious\n');
    const target = path.join(root, 'etc', 'app.conf');
    fs.symlinkSync(victim, target);
    const err = await refused(target, 'symlink');
    expect(err.message).toContain('symbolic link');
    expect(fs.readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(fs.lstatSync(target).isSymbolicLink()).toBe(true);
    // A dangling link too (it would create a file wherever it points).
    const dangling = path.join(root, 'etc', 'dangling');
    fs.symlinkSync(path.join(outside, 'new-file'), dangling);
    await refused(dangling, 'symlink');
    expect(fs.existsSync(path.join(outside, 'new-file'))).toBe(false);
  });

  it('a symlinked parent directory leading outside the roots is refused; one staying inside is allowed', async () => {
    fs.symlinkSync(outside, path.join(root, 'escape'));
    const err = await refused(path.join(root, 'escape', 'x'), 'outside_policy');
    expect(err.message).toContain(`resolves to ${fs.realpathSync(outside)}`);
    expect(fs.readdirSync(outside)).toEqual([]);
    fs.symlinkSync(path.join(root, 'etc'), path.join(root, 'alias'));
    await writeDeployed(source, { path: path.join(root, 'alias', 'ok'), mode: 0o600, owner: null }, [root]);
    expect(fs.readFileSync(path.join(root, 'etc', 'ok'), 'utf8')).toBe('new content\n');
  });

  it('paths outside every root, with ".." or "." segments, relative, with NUL, ending in "/": refused, nothing written', async () => {
    await refused(path.join(outside, 'x'), 'outside_policy');
    await refused(`${root}/etc/../../outside/x`, 'bad_path');
    await refused(`${root}/./etc/x`, 'bad_path');
    await refused(`${root}//etc/x`, 'bad_path');
    await refused('etc/x', 'bad_path');
    await refused(`${root}/etc/a\0b`, 'bad_path');
    await refused(`${root}/etc/`, 'bad_path');
    // A root that is a prefix of another directory's name does not allow that directory.
    fs.mkdirSync(`${root}-evil`);
    await refused(`${root}-evil/x`, 'outside_policy');
    expect(fs.readdirSync(outside)).toEqual([]);
  });

  it('no allowed root, a missing parent, a directory or a device at the target: refused with the reason', async () => {
    expect((await refused(path.join(root, 'x'), 'outside_policy', [])).message).toContain('KAPITAN_AGENT_DEPLOY_DIRS');
    expect((await refused(path.join(root, 'x'), 'outside_policy', [path.join(base, 'missing')])).message).toContain('KAPITAN_AGENT_DEPLOY_DIRS');
    await refused(path.join(root, 'nope', 'x'), 'no_parent');
    await refused(path.join(root, 'etc'), 'not_a_file');
    await refused('/dev/null', 'outside_policy', [root]);
    await refused('/dev/null', 'not_a_file', ['/dev']);
  });

  it('owner: numeric ids and names resolve; an unknown user or group is refused; a chown the agent may not do is a clear failure', async () => {
    const passwd = path.join(base, 'passwd');
    const group = path.join(base, 'group');
    fs.writeFileSync(passwd, 'root:x:0:0::/root:/bin/sh\napp:x:1234:1300::/home/app:/bin/sh\n');
    fs.writeFileSync(group, 'root:x:0:\nweb:x:1400:\n');
    const files = { passwd, group };
    expect(resolveOwner('app', files)).toEqual({ uid: 1234, gid: 1300 });
    expect(resolveOwner('app:web', files)).toEqual({ uid: 1234, gid: 1400 });
    expect(resolveOwner('1234:0', files)).toEqual({ uid: 1234, gid: 0 });
    expect(() => resolveOwner('nobody-here', files)).toThrow(/no user nobody-here/);
    expect(() => resolveOwner('app:nogroup', files)).toThrow(/no group nogroup/);
    const me = process.getuid!();
    const target = path.join(root, 'etc', 'owned');
    await writeDeployed(source, { path: target, mode: 0o644, owner: String(me) }, [root]);
    expect(fs.statSync(target).uid).toBe(me);
    if (me === 0) {
      // As root the owner is applied (numeric ids need no passwd entry).
      const other = path.join(root, 'etc', 'other');
      await writeDeployed(source, { path: other, mode: 0o640, owner: '1234:1400' }, [root]);
      expect(fs.statSync(other)).toMatchObject({ uid: 1234, gid: 1400 });
      expect(fs.statSync(other).mode & 0o777).toBe(0o640);
    } else {
      const err = await writeDeployed(source, { path: path.join(root, 'etc', 'other'), mode: 0o644, owner: '0:0' }, [root]).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'owner' });
      expect(fs.existsSync(path.join(root, 'etc', 'other'))).toBe(false);
      expect(leftovers(path.join(root, 'etc'))).toEqual([]);
    }
  });
});
