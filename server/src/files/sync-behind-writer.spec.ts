import { randomBytes } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { mkdtemp, open, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { settled } from './blob-store';
import { SYNC_BEHIND_BYTES, SyncBehindWriter } from './sync-behind-writer';

/** The prototype every FileHandle shares: observed (not replaced) to count the syncs the writer asks for. */
async function fileHandlePrototype(dir: string): Promise<{ datasync: () => Promise<void>; sync: () => Promise<void> }> {
  const h = await open(join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(h) as { datasync: () => Promise<void>; sync: () => Promise<void> };
  await h.close();
  return proto;
}

/** `bytes` delivered in pieces of `piece` bytes, as a socket would. */
function pieces(bytes: Buffer, piece: number): Readable {
  let at = 0;
  return new Readable({
    read() {
      if (at >= bytes.length) return this.push(null);
      this.push(bytes.subarray(at, at + piece));
      at += piece;
    },
  });
}

/** Open descriptors of this process that point at `file`. */
async function openDescriptorsOf(file: string): Promise<number> {
  let n = 0;
  for (const fd of await readdir('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === file) n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}

describe('SyncBehindWriter', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kapitan-sync-behind-'));
  });
  afterEach(async () => {
    jest.restoreAllMocks();
    await rm(dir, { recursive: true, force: true });
  });

  it('writes a new file byte for byte, syncing behind the writes and once at the end', async () => {
    const proto = await fileHandlePrototype(dir);
    const datasync = jest.spyOn(proto, 'datasync');
    const sync = jest.spyOn(proto, 'sync');
    const bytes = randomBytes(3 * SYNC_BEHIND_BYTES + 12345);
    const path = join(dir, 'new');
    const out = new SyncBehindWriter(path, { flags: 'wx', highWaterMark: 1 << 20 });
    await pipeline(pieces(bytes, 65536), out);
    expect((await readFile(path)).equals(bytes)).toBe(true);
    expect(out.bytesWritten).toBe(bytes.length);
    // one sync per SYNC_BEHIND_BYTES at most (one at a time), and the final one
    expect(datasync.mock.calls.length).toBeGreaterThanOrEqual(1);
    expect(datasync.mock.calls.length).toBeLessThanOrEqual(3);
    expect(sync).toHaveBeenCalledTimes(1);
    await settled(out);
    expect(await openDescriptorsOf(path)).toBe(0);
  });

  it('r+ at an offset: the bytes land exactly there and what was before stays', async () => {
    const path = join(dir, 'part');
    const head = randomBytes(1000);
    await writeFile(path, Buffer.concat([head, Buffer.alloc(500, 0x61)]));
    const chunk = randomBytes(2000);
    await pipeline(pieces(chunk, 333), new SyncBehindWriter(path, { flags: 'r+', start: 1000 }));
    expect((await readFile(path)).equals(Buffer.concat([head, chunk]))).toBe(true);
  });

  it('wx onto an existing file fails the pipeline and leaves the file as it was', async () => {
    const path = join(dir, 'taken');
    await writeFile(path, 'before');
    const out = new SyncBehindWriter(path, { flags: 'wx' });
    await expect(pipeline(pieces(Buffer.from('after'), 2), out)).rejects.toMatchObject({ code: 'EEXIST' });
    expect(await readFile(path, 'utf8')).toBe('before');
  });

  it('a source that fails mid-way closes the file: nothing holds it once settled', async () => {
    const path = join(dir, 'aborted');
    const out = new SyncBehindWriter(path, { flags: 'wx' });
    const source = new Readable({
      read() {
        this.push(randomBytes(SYNC_BEHIND_BYTES + 1));
        this.destroy(new Error('client went away'));
      },
    });
    await expect(pipeline(source, out)).rejects.toThrow('client went away');
    await settled(out);
    expect(out.closed).toBe(true);
    expect(await openDescriptorsOf(path)).toBe(0);
  });

  it('a failed background sync fails the stream instead of reporting it durable', async () => {
    const proto = await fileHandlePrototype(dir);
    jest.spyOn(proto, 'datasync').mockRejectedValueOnce(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    const out = new SyncBehindWriter(join(dir, 'eio'), { flags: 'wx' });
    await expect(pipeline(pieces(randomBytes(3 * SYNC_BEHIND_BYTES), 1 << 20), out)).rejects.toMatchObject({ code: 'EIO' });
  });
});
