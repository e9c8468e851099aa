/**
 * The layer index of image tarballs, on both databases: built on a file's
 * first distribution, served to the machine it is sent to (and to no other)
 * with offsets that are exactly the members' bytes; a tarball that is
 * malformed or leaves the archive is refused with a clear reason, keeps no
 * index and is then sent whole (the agent gets 404 for the index).
 */
import { ImageIndexSchema, agentImageIndexPath, type ImageIndex } from '@kapitan/shared';
import { createHash, randomBytes } from 'node:crypto';
import { bearer, createTestApp, describeBothDatabases, TestApp } from '../testing/test-app';
import { closeSockets, enrolMachine, setupProject, type SpecProject } from '../testing/sockets';
import { ImageIndexError } from './image-index';
import { ImageIndexService } from './image-index.service';

const hex = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

interface Member {
  name: string;
  body?: Buffer;
  type?: '0' | '2' | '5' | 'x';
  link?: string;
  /** Damage for the malformed cases. */
  badChecksum?: boolean;
  claimSize?: number;
}

/** A ustar archive of `members`, as a test can shape it (including wrongly). */
function tar(members: Member[], end = true): Buffer {
  const out: Buffer[] = [];
  for (const m of members) {
    const body = m.body ?? Buffer.alloc(0);
    const h = Buffer.alloc(512);
    h.write(m.name, 0, 100, 'utf8');
    h.write('0000644\0', 100, 'latin1');
    h.write('0000000\0', 108, 'latin1');
    h.write('0000000\0', 116, 'latin1');
    h.write(`${(m.claimSize ?? body.length).toString(8).padStart(11, '0')}\0`, 124, 'latin1');
    h.write('00000000000\0', 136, 'latin1');
    h.fill(0x20, 148, 156);
    h.write(m.type ?? '0', 156, 'latin1');
    if (m.link) h.write(m.link, 157, 100, 'utf8');
    h.write('ustar\x0000', 257, 'latin1');
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${(m.badChecksum ? sum + 1 : sum).toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    out.push(h, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  if (end) out.push(Buffer.alloc(1024));
  return Buffer.concat(out);
}

/** `<length> key=value\n`, the length counting its own digits. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  let n = body.length + 1;
  while (String(n).length + body.length !== n) n = String(n).length + body.length;
  return `${n}${body}`;
}

/** A layer: itself a tar of one file, its diffID the sha256 of those bytes. */
const layer = (content: string) => tar([{ name: 'file.txt', body: Buffer.from(content) }]);

/** What `docker save` of a two-layer image writes (config named by its digest, `<id>/layer.tar`); `edit` reshapes it. */
function dockerSave(edit: { manifest?: (m: Record<string, unknown>[]) => unknown; members?: (ms: Member[]) => Member[]; config?: (c: Record<string, unknown>) => unknown } = {}) {
  const layers = [layer('base'), layer('app v2')];
  const config = { architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: layers.map((l) => `sha256:${hex(l)}`) } };
  const configBytes = Buffer.from(JSON.stringify(edit.config ? edit.config(config) : config));
  const configName = `${hex(configBytes)}.json`;
  const ids = ['a'.repeat(64), 'b'.repeat(64)];
  const manifest = [{ Config: configName, RepoTags: ['app:v2'], Layers: ids.map((id) => `${id}/layer.tar`) }];
  const manifestBytes = Buffer.from(JSON.stringify(edit.manifest ? edit.manifest(manifest) : manifest));
  let members: Member[] = [
    { name: `${ids[0]}/`, type: '5' },
    { name: `${ids[0]}/VERSION`, body: Buffer.from('1.0') },
    { name: `${ids[0]}/layer.tar`, body: layers[0] },
    { name: `${ids[1]}/`, type: '5' },
    { name: `${ids[1]}/layer.tar`, body: layers[1] },
    { name: configName, body: configBytes },
    { name: 'manifest.json', body: manifestBytes },
    { name: 'repositories', body: Buffer.from('{}') },
  ];
  if (edit.members) members = edit.members(members);
  return { bytes: tar(members), layers, configBytes, configName, manifestBytes, ids };
}

describeBothDatabases('image layer index', (database) => {
  let t: TestApp;
  let p: SpecProject;
  let service: ImageIndexService;
  beforeAll(async () => {
    t = await createTestApp({ database });
    p = await setupProject(t);
    service = t.app.get(ImageIndexService);
  });
  afterEach(() => closeSockets());
  afterAll(() => t?.close());

  const upload = async (bytes: Buffer): Promise<{ id: string; sha256: string; size: number }> =>
    (await t.http.post(`/api/projects/${p.projectId}/files?kind=image&name=image.tar`).set(bearer(p.owner.token)).set('Content-Type', 'application/octet-stream').send(bytes).expect(201)).body;
  const indexRows = async (fileId: string): Promise<number> => Number((await t.db.query('SELECT COUNT(*) AS n FROM image_indexes WHERE fileId = ?', [fileId]))[0].n);
  const distribute = async (fileId: string, machineId: string) =>
    t.http.post(`/api/projects/${p.projectId}/distributions`).set(bearer(p.owner.token)).send({ fileId, targets: { machineIds: [machineId] } }).expect(201);

  it('built on the first distribution; the machine sent it gets spans that are exactly the members, another machine a 404', async () => {
    const img = dockerSave();
    const f = await upload(img.bytes);
    const m = await enrolMachine(t, p);
    const other = await enrolMachine(t, p);
    expect(await indexRows(f.id)).toBe(0);
    // Not yet distributed: not even the machine may read it.
    expect((await t.http.get(agentImageIndexPath(f.id)).set(bearer(m.credential))).status).toBe(404);
    await distribute(f.id, m.machineId);
    expect(await indexRows(f.id)).toBe(1);

    const res = await t.http.get(agentImageIndexPath(f.id)).set(bearer(m.credential)).expect(200);
    const index: ImageIndex = ImageIndexSchema.parse(res.body);
    expect(index).toMatchObject({ fileId: f.id, sha256: f.sha256, size: img.bytes.length, format: 'docker-save' });
    const slice = (s: { offset: number; size: number }) => img.bytes.subarray(s.offset, s.offset + s.size);
    expect(slice(index.manifest)).toEqual(img.manifestBytes);
    expect(index.manifest.sha256).toBe(hex(img.manifestBytes));
    expect(index.config).toMatchObject({ name: img.configName, digest: `sha256:${hex(img.configBytes)}` });
    expect(slice(index.config)).toEqual(img.configBytes);
    expect(index.layers.map((l) => [l.name, l.diffId])).toEqual(img.ids.map((id, i) => [`${id}/layer.tar`, `sha256:${hex(img.layers[i])}`]));
    index.layers.forEach((l, i) => expect(slice(l)).toEqual(img.layers[i]));

    expect((await t.http.get(agentImageIndexPath(f.id)).set(bearer(other.credential))).status).toBe(404);
    expect((await t.http.get(agentImageIndexPath(f.id))).status).toBe(401);
    expect((await t.http.get(agentImageIndexPath(f.id)).set(bearer('kpm_not.valid'))).status).toBe(401);
  });

  it('a repeated layer that docker save writes as a symlink resolves to the bytes it links to; pax long names are read', async () => {
    const img = dockerSave({
      config: (c) => ({ ...c, rootfs: { type: 'layers', diff_ids: [`sha256:${hex(layer('base'))}`, `sha256:${hex(layer('base'))}`] } }),
      members: (ms) => {
        const long = `${'d'.repeat(90)}/${'e'.repeat(40)}`;
        return [
          ...ms.filter((x) => !x.name.startsWith('b'.repeat(64))),
          { name: `${'b'.repeat(64)}/layer.tar`, type: '2', link: `../${'a'.repeat(64)}/layer.tar` },
          { name: 'PaxHeader', type: 'x', body: Buffer.from(paxRecord('path', long)) },
          { name: 'short', body: Buffer.from('long-named member') },
        ];
      },
    });
    const f = await upload(img.bytes);
    const index = await service.build(p.projectId, f.id);
    expect(index.layers[1]).toMatchObject({ name: `${'b'.repeat(64)}/layer.tar`, offset: index.layers[0].offset, size: index.layers[0].size });
    expect(await indexRows(f.id)).toBe(1);
  });

  const malformed: [string, () => Buffer, RegExp][] = [
    ['a corrupt header', () => dockerSave({ members: (ms) => ms.map((x) => (x.name === 'manifest.json' ? { ...x, badChecksum: true } : x)) }).bytes, /byte \d+ is corrupt \(its checksum/],
    ['a member claiming more bytes than the archive has', () => tar([{ name: 'manifest.json', body: Buffer.from('[]'), claimSize: 10_000_000 }], false), /claims 10000000 bytes, past the end/],
    ['a member named outside the archive', () => dockerSave({ members: (ms) => [{ name: '../../etc/cron.d/x', body: Buffer.from('* * * * * root id') }, ...ms] }).bytes, /a member outside the archive: "..\/..\/etc\/cron.d\/x"/],
    ['an absolute member name', () => dockerSave({ members: (ms) => [{ name: '/etc/passwd', body: Buffer.from('x') }, ...ms] }).bytes, /a member outside the archive: "\/etc\/passwd"/],
    ['a manifest layer path outside the archive', () => dockerSave({ manifest: (m) => [{ ...m[0], Layers: ['../../var/lib/docker/x/layer.tar', (m[0].Layers as string[])[1]] }] }).bytes, /a path outside the archive/],
    ['a layer that is a symlink out of the archive', () => dockerSave({ members: (ms) => ms.map((x) => (x.name === `${'a'.repeat(64)}/layer.tar` ? { name: x.name, type: '2' as const, link: '../../../etc/shadow' } : x)) }).bytes, /links outside the archive/],
    ['a layer that is an absolute symlink', () => dockerSave({ members: (ms) => ms.map((x) => (x.name === `${'a'.repeat(64)}/layer.tar` ? { name: x.name, type: '2' as const, link: '/etc/shadow' } : x)) }).bytes, /links outside the archive/],
    ['a layer path that is not in the tarball', () => dockerSave({ members: (ms) => ms.filter((x) => x.name !== `${'b'.repeat(64)}/layer.tar`) }).bytes, /layer 2 .* is not in the tarball/],
    ['no manifest.json', () => dockerSave({ members: (ms) => ms.filter((x) => x.name !== 'manifest.json') }).bytes, /manifest.json .* is not in the tarball/],
    ['a manifest that is not JSON', () => dockerSave({ members: (ms) => ms.map((x) => (x.name === 'manifest.json' ? { ...x, body: Buffer.from('{not json') } : x)) }).bytes, /manifest.json is not JSON/],
    ['two images in one tarball', () => dockerSave({ manifest: (m) => [m[0], m[0]] }).bytes, /lists 2 images/],
    ['a config that does not hash to its name', () => dockerSave({ members: (ms) => ms.map((x) => (x.name.endsWith('.json') && x.name !== 'manifest.json' ? { ...x, body: Buffer.from('{"rootfs":{"diff_ids":[]}}') } : x)) }).bytes, /hashes to sha256:[0-9a-f]{64}, not to the digest it is named by/],
    ['a layer count the config does not share', () => dockerSave({ config: (c) => ({ ...c, rootfs: { type: 'layers', diff_ids: [`sha256:${'c'.repeat(64)}`] } }) }).bytes, /lists 2 layers, the config's rootfs 1/],
    ['a diffID that is not a digest', () => dockerSave({ config: (c) => ({ ...c, rootfs: { type: 'layers', diff_ids: ['sha256:zz', 'x'] } }) }).bytes, /not a sha256 digest/],
    ['a member twice', () => dockerSave({ members: (ms) => [...ms, ms.find((x) => x.name === 'manifest.json')!] }).bytes, /holds "manifest.json" twice/],
    ['a tarball cut inside a header', () => dockerSave().bytes.subarray(0, 512 * 3 + 100), /ends inside/],
  ];

  it.each(malformed)('%s: refused with the reason, no index kept, the distribution still goes (whole) and the agent gets 404 for the index', async (_what, make, reason) => {
    const bytes = make();
    // The store accepts any tar as an image (ustar magic); only indexing looks further.
    const f = await upload(Buffer.concat([bytes, Buffer.alloc(Math.max(0, 1024 - bytes.length))]));
    const err = await service.build(p.projectId, f.id).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ImageIndexError);
    expect((err as Error).message).toMatch(reason);
    expect(await indexRows(f.id)).toBe(0);
    const m = await enrolMachine(t, p);
    await distribute(f.id, m.machineId);
    expect(await indexRows(f.id)).toBe(0);
    expect((await t.http.get(agentImageIndexPath(f.id)).set(bearer(m.credential))).status).toBe(404);
  });

  it('a random (non-image) tar is simply not indexed; the index goes with the file', async () => {
    const noise = tar([{ name: 'layer.bin', body: randomBytes(3000) }]);
    const f = await upload(noise);
    expect(await service.ensure(p.projectId, f.id)).toBeNull();
    const img = await upload(dockerSave().bytes);
    const m = await enrolMachine(t, p);
    await distribute(img.id, m.machineId);
    expect(await indexRows(img.id)).toBe(1);
    // Once the delivery is over the file can go, and its index with it (foreign key).
    await t.db.query('UPDATE delivery_machines SET status = ? WHERE machineId = ?', ['failed', m.machineId]);
    await t.http.delete(`/api/files/${img.id}`).set(bearer(p.owner.token)).expect(204);
    expect(await indexRows(img.id)).toBe(0);
  });
});
