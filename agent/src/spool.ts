/**
 * The outbox's copy on disk, so that output the agent has read but the
 * server has not yet acknowledged survives a crash of the agent (kill -9,
 * OOM kill): the next `run` queues it again before reporting the
 * interrupted execution `lost`.
 *
 * Layout: `<state dir>/spool/<channel>/<key>/<n>.seg`, append-only segment
 * files of one JSON line per entry (`[ord, phase, value]`) or per
 * acknowledgement (`[ord, "a"]`: everything up to `ord` is stored, do not
 * send it again), directories 0700, files 0600. Entry numbers (`ord`) grow
 * per stream across restarts. A segment is closed at `segmentBytes` and the
 * next one opened; a segment whose entries are all acknowledged is deleted;
 * the stream's directory is deleted when its last entry (`close`) is
 * acknowledged. So the
 * spool holds what the outbox holds (bounded by the outbox bound, which stops
 * the reading of the scripts' pipes when reached) plus at most one
 * partly acknowledged segment per stream.
 *
 * fsync policy: none. A write() into the page cache survives the death of
 * the process, which is what this is for, and costs no disk flush on the
 * output hot path. A power loss or kernel crash may lose the unsynced tail;
 * the journal (fsynced) still reports the execution `lost` and the server
 * shows the gap.
 *
 * A failing write (disk full, permissions) is logged and the stream goes on
 * in memory only: the spool never stops output.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ensurePrivateDir } from './state';
import { silentLogger, type Logger } from './logger';
import type { EntryPhase, OutboxSpool, SpooledStream } from './outbox';

export const SPOOL_DIR = 'spool';
export const DEFAULT_SEGMENT_BYTES = 1024 * 1024;
/** A fully acknowledged current segment at least this big is dropped rather than appended to. */
const RESET_BYTES = 64 * 1024;
const SEGMENT = /^(\d{1,12})\.seg$/;
const SAFE = /^[A-Za-z0-9-]{1,100}$/;
const PHASE_CODE: Record<EntryPhase, string> = { open: 'o', item: 'i', close: 'c' };
const CODE_PHASE: Record<string, EntryPhase> = { o: 'open', i: 'item', c: 'close' };

interface Segment {
  n: number;
  file: string;
  lastOrd: number;
  bytes: number;
}

interface StreamFiles {
  dir: string;
  segments: Segment[];
  fd: number | null;
  nextN: number;
  broken: boolean;
}

export interface FileSpoolOptions {
  segmentBytes?: number;
  logger?: Logger;
}

export class FileSpool implements OutboxSpool {
  private readonly streams = new Map<string, StreamFiles>();
  private readonly segmentBytes: number;
  private readonly logger: Logger;
  private loadedFiles: string[] = [];
  private closed = false;

  constructor(
    readonly dir: string,
    options: FileSpoolOptions = {},
  ) {
    this.segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    this.logger = options.logger ?? silentLogger;
  }

  append(channel: string, key: string, ord: number, phase: EntryPhase, value: unknown): void {
    if (this.closed) return;
    const s = this.stream(channel, key);
    if (!s || s.broken) return;
    try {
      let cur = s.segments[s.segments.length - 1];
      if (s.fd === null || !cur || cur.bytes >= this.segmentBytes) {
        if (s.fd !== null) fs.closeSync(s.fd);
        s.fd = null;
        const n = s.nextN++;
        cur = { n, file: path.join(s.dir, `${n}.seg`), lastOrd: -1, bytes: 0 };
        s.fd = fs.openSync(cur.file, 'a', 0o600);
        s.segments.push(cur);
      }
      const line = JSON.stringify([ord, PHASE_CODE[phase], value]) + '\n';
      fs.writeSync(s.fd, line);
      cur.lastOrd = ord;
      cur.bytes += line.length;
    } catch (err) {
      s.broken = true;
      this.logger.error('could not write the output spool; this stream is kept in memory only', { channel, key, err });
    }
  }

  acked(channel: string, key: string, ord: number): void {
    const s = this.streams.get(`${channel}/${key}`);
    if (!s || s.broken) return;
    const cur = s.fd !== null ? s.segments[s.segments.length - 1] : undefined;
    const keep: Segment[] = [];
    for (const seg of s.segments) {
      const done = seg.lastOrd <= ord;
      if (done && (seg !== cur || seg.bytes >= RESET_BYTES)) {
        if (seg === cur) {
          fs.closeSync(s.fd!);
          s.fd = null;
        }
        this.unlink(seg.file);
      } else keep.push(seg);
    }
    s.segments = keep;
    if (s.fd !== null) {
      try {
        const mark = `[${ord},"a"]\n`;
        fs.writeSync(s.fd, mark);
        s.segments[s.segments.length - 1]!.bytes += mark.length;
      } catch (err) {
        s.broken = true;
        this.logger.error('could not write the output spool; this stream is kept in memory only', { channel, key, err });
      }
    }
  }

  remove(channel: string, key: string): void {
    const id = `${channel}/${key}`;
    const s = this.streams.get(id);
    if (s?.fd !== null && s?.fd !== undefined) fs.closeSync(s.fd);
    this.streams.delete(id);
    if (!SAFE.test(channel) || !SAFE.test(key)) return;
    try {
      fs.rmSync(path.join(this.dir, channel, key), { recursive: true, force: true });
    } catch (err) {
      this.logger.warn('could not remove a spooled stream', { channel, key, err });
    }
  }

  load(): SpooledStream[] {
    const out: SpooledStream[] = [];
    this.loadedFiles = [];
    for (const channel of this.list(this.dir)) {
      for (const key of this.list(path.join(this.dir, channel))) {
        const dir = path.join(this.dir, channel, key);
        const segs = this.segmentsIn(dir);
        const entries: SpooledStream['entries'] = [];
        let lastOrd = -1;
        let ackedThrough = -1;
        for (const seg of segs) {
          this.loadedFiles.push(seg.file);
          let text: string;
          try {
            text = fs.readFileSync(seg.file, 'utf8');
          } catch (err) {
            this.logger.error('could not read a spool segment', { file: seg.file, err });
            continue;
          }
          let bad = 0;
          for (const line of text.split('\n')) {
            if (line === '') continue;
            try {
              const [ord, code, value] = JSON.parse(line) as [unknown, unknown, unknown];
              if (typeof ord !== 'number' || !Number.isSafeInteger(ord) || typeof code !== 'string') {
                bad++;
              } else if (code === 'a') {
                ackedThrough = Math.max(ackedThrough, ord);
              } else if (!CODE_PHASE[code]) {
                bad++;
              } else if (ord > lastOrd) {
                // (an entry at or below lastOrd is a copy left by a restore interrupted by a crash)
                entries.push({ ord, phase: CODE_PHASE[code], value });
                lastOrd = ord;
              }
            } catch {
              bad++; // a torn last line (the crash came mid-write)
            }
          }
          if (bad > 0) this.logger.warn('skipped unreadable lines of a spool segment', { file: seg.file, lines: bad });
        }
        out.push({ channel, key, entries: entries.filter((e) => e.ord > ackedThrough) });
      }
    }
    return out;
  }

  commitRestore(): void {
    for (const file of this.loadedFiles) this.unlink(file);
    this.loadedFiles = [];
    // directories whose streams were not queued again
    for (const channel of this.list(this.dir)) {
      for (const key of this.list(path.join(this.dir, channel))) {
        if (this.streams.has(`${channel}/${key}`)) continue;
        fs.rmSync(path.join(this.dir, channel, key), { recursive: true, force: true });
      }
    }
  }

  close(): void {
    this.closed = true;
    for (const s of this.streams.values()) if (s.fd !== null) fs.closeSync(s.fd);
    this.streams.clear();
  }

  private stream(channel: string, key: string): StreamFiles | null {
    const id = `${channel}/${key}`;
    let s = this.streams.get(id);
    if (s) return s;
    if (!SAFE.test(channel) || !SAFE.test(key)) {
      this.logger.warn('stream name not fit for a file name: not spooled', { channel, key });
      return null;
    }
    const dir = path.join(this.dir, channel, key);
    try {
      ensurePrivateDir(this.dir);
      ensurePrivateDir(path.join(this.dir, channel));
      ensurePrivateDir(dir);
    } catch (err) {
      this.logger.error('could not create the output spool; this stream is kept in memory only', { dir, err });
      s = { dir, segments: [], fd: null, nextN: 0, broken: true };
      this.streams.set(id, s);
      return s;
    }
    // numbers continue after what a previous process left (still there until commitRestore)
    const existing = this.segmentsIn(dir);
    s = { dir, segments: [], fd: null, nextN: existing.length ? existing[existing.length - 1]!.n + 1 : 0, broken: false };
    this.streams.set(id, s);
    return s;
  }

  private segmentsIn(dir: string): Segment[] {
    const segs: Segment[] = [];
    for (const name of this.list(dir)) {
      const m = SEGMENT.exec(name);
      if (m) segs.push({ n: Number(m[1]), file: path.join(dir, name), lastOrd: -1, bytes: 0 });
    }
    return segs.sort((a, b) => a.n - b.n);
  }

  private list(dir: string): string[] {
    try {
      return fs.readdirSync(dir).filter((n) => SAFE.test(n) || SEGMENT.test(n));
    } catch {
      return [];
    }
  }

  private unlink(file: string): void {
    try {
      fs.unlinkSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.logger.warn('could not remove a spool segment', { file, err });
    }
  }
}
