/**
 * Files the server sends this agent (deploys, image tarballs), downloaded
 * over HTTP(S) from the server's URL with the machine credential — never
 * through the socket — into a bounded cache in the state directory.
 *
 * - Content-addressed: an entry is named by its sha256, so the same bytes
 *   sent twice (another deploy of the same file, a re-upload under another
 *   name) are downloaded once.
 * - Verified before use: the bytes are hashed as they arrive; a digest that
 *   is not the one the server announced discards the partial download and
 *   fails with `hash_mismatch`. Nothing unverified is ever handed out.
 *   Entries are not fsynced: what this process verified is trusted only in
 *   its memory, and an entry found on disk at start (written by an earlier
 *   process, perhaps cut short by a crash of the host) is hashed again at
 *   its first use and downloaded again if it no longer matches its name.
 *   The disk is then never waited on, and a crash costs a re-download.
 * - Resumable: a dropped connection resumes with `Range: bytes=<received>-`
 *   (the prefix on disk is hashed again first, so the digest covers exactly
 *   the bytes kept), a bounded number of times with backoff.
 * - Bounded: `maxBytes` over all entries plus the downloads in progress;
 *   room is made by evicting the least recently used entries that no one
 *   holds a lease on. A file larger than the bound, or one that would only
 *   fit by evicting entries in use, fails with a clear reason.
 * - Parts: a member of a file (an image layer, see image-layers.ts) is
 *   fetched as one byte range of it and kept under its own digest, verified
 *   the same way; a layer that two images share is then fetched once.
 */
import { createHash, type Hash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { agentFileContentPath, type FileRef } from '@kapitan/shared';
import { silentLogger, type Logger } from './logger';

export const CACHE_DIR = 'cache';
export const DEFAULT_CACHE_BYTES = 10 * 1024 ** 3;

export type DownloadFailureCode = 'hash_mismatch' | 'size_mismatch' | 'too_large' | 'cache_full' | 'refused' | 'not_found' | 'network' | 'io';

/** A download that could not produce verified bytes; `message` says why in words an admin can act on. */
export class DownloadError extends Error {
  constructor(
    readonly code: DownloadFailureCode,
    message: string,
  ) {
    super(message);
    this.name = 'DownloadError';
  }
}

/** A verified cache entry, held: it is not evicted until `release()`. */
export interface CacheLease {
  readonly path: string;
  readonly sha256: string;
  readonly size: number;
  /** Bytes this acquire downloaded: 0 when the entry was cached, or another acquire was already fetching it. */
  readonly fetched: number;
  release(): void;
}

/**
 * One member of a stored file, fetched as the byte range `offset`..`offset+size`
 * of it: `sha256` and `size` are the member's (what its bytes must hash to),
 * `fileSha256` the whole file's, `what` names it in errors.
 */
export interface PartRef extends FileRef {
  part: { offset: number; fileSha256: string; what: string };
}

export interface FileCacheOptions {
  /** Directory of the cache (created private): `<stateDir>/cache`. */
  dir: string;
  maxBytes: number;
  /** The server's base URL (http or https), as enrolled. */
  serverUrl: string;
  credential: string;
  /** Extra request options: `ca` of a pinned certificate, an `agent` for a proxy. */
  requestOptions?: https.RequestOptions;
  /** Resumes after a dropped connection before giving up. Default 5. */
  maxResumes?: number;
  /** First wait before a resume, doubled each time. Default 500 ms. */
  resumeDelayMs?: number;
  /** A response that sends nothing for this long is dropped (and resumed). Default 30 s. */
  idleTimeoutMs?: number;
  logger?: Logger;
}

export interface CacheEntryInfo {
  sha256: string;
  size: number;
  lastUsed: number;
  leases: number;
}

interface Entry {
  size: number;
  lastUsed: number;
  leases: number;
  /** Hashed by this process: downloaded by it, or checked again since it started. */
  verified: boolean;
}

export type DownloadProgress = (received: number, total: number) => void;

const SHA256 = /^[0-9a-f]{64}$/;
/** What a download's write stream holds before it stops reading the socket. */
const WRITE_BUFFER_BYTES = 1024 * 1024;

export class FileCache {
  private readonly entries = new Map<string, Entry>();
  /** Downloads in progress, by digest: a second request for the same bytes waits for the first. */
  private readonly inFlight = new Map<string, { promise: Promise<void>; listeners: Set<DownloadProgress> }>();
  /** Bytes reserved by downloads in progress. */
  private reserved = 0;
  private readonly blobs: string;
  private readonly partials: string;
  private readonly logger: Logger;
  private readonly base: URL;

  constructor(private readonly options: FileCacheOptions) {
    this.logger = options.logger ?? silentLogger;
    this.base = new URL(options.serverUrl);
    if (this.base.protocol !== 'http:' && this.base.protocol !== 'https:') throw new Error(`server URL must be http(s): ${options.serverUrl}`);
    this.blobs = path.join(options.dir, 'sha256');
    this.partials = path.join(options.dir, 'partial');
    for (const d of [options.dir, this.blobs, this.partials]) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
    // A previous process's partial downloads: their prefix was never verified against a finished hash; start over.
    for (const name of fs.readdirSync(this.partials)) fs.rmSync(path.join(this.partials, name), { force: true });
    for (const name of fs.readdirSync(this.blobs)) {
      const file = path.join(this.blobs, name);
      const st = fs.lstatSync(file);
      if (!SHA256.test(name) || !st.isFile()) {
        fs.rmSync(file, { force: true, recursive: true });
        continue;
      }
      this.entries.set(name, { size: st.size, lastUsed: st.mtimeMs, leases: 0, verified: false });
    }
  }

  /** Bytes held by entries (not counting downloads in progress). */
  totalBytes(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.size;
    return n;
  }

  list(): CacheEntryInfo[] {
    return [...this.entries].map(([sha256, { size, lastUsed, leases }]) => ({ sha256, size, lastUsed, leases }));
  }

  has(sha256: string): boolean {
    return this.entries.has(sha256);
  }

  /**
   * The verified bytes of `ref`, from the cache or downloaded now, held
   * until `release()`. Rejects with a DownloadError (nothing kept) when they
   * cannot be had.
   */
  async acquire(ref: FileRef | PartRef, onProgress?: DownloadProgress): Promise<CacheLease> {
    const sha256 = ref.sha256.toLowerCase();
    if (!SHA256.test(sha256)) throw new DownloadError('io', `not a sha256 digest: ${ref.sha256}`);
    let entry = this.entries.get(sha256);
    if (entry && !entry.verified) entry = await this.verifyOnce(sha256, entry);
    let fetched = 0;
    if (!entry) {
      let flight = this.inFlight.get(sha256);
      if (!flight) {
        fetched = ref.size;
        const listeners = new Set<DownloadProgress>();
        const promise = this.download({ ...ref, sha256 }, (r, t) => listeners.forEach((l) => l(r, t))).finally(() => this.inFlight.delete(sha256));
        this.inFlight.set(sha256, (flight = { promise, listeners }));
      }
      if (onProgress) flight.listeners.add(onProgress);
      try {
        await flight.promise;
      } finally {
        if (onProgress) flight.listeners.delete(onProgress);
      }
      entry = this.entries.get(sha256);
      // Evicted between its download and this waiter's turn: cannot happen while leases are taken synchronously below, but never hand out a missing file.
      if (!entry) return this.acquire(ref, onProgress);
    } else {
      onProgress?.(entry.size, entry.size);
    }
    entry.leases += 1;
    entry.lastUsed = Date.now();
    const file = path.join(this.blobs, sha256);
    // The recency survives a restart of the agent.
    fs.utimes(file, new Date(), new Date(), () => undefined);
    let released = false;
    const held = entry;
    return {
      path: file,
      sha256,
      size: entry.size,
      fetched,
      release: () => {
        if (released) return;
        released = true;
        held.leases -= 1;
      },
    };
  }

  /** Checks of entries found at start, by digest: two acquires of one entry hash it once. */
  private readonly checking = new Map<string, Promise<Entry | undefined>>();

  /**
   * An entry an earlier process left: hashed again before its first use
   * (held meanwhile, so it is not evicted under the check). The entry, or
   * undefined when its bytes no longer hash to its name (it is removed,
   * and the caller downloads it again).
   */
  private verifyOnce(sha256: string, entry: Entry): Promise<Entry | undefined> {
    let check = this.checking.get(sha256);
    if (!check) {
      const file = path.join(this.blobs, sha256);
      entry.leases += 1;
      check = hashFile(file)
        .then(
          ({ hash, received }) => received === entry.size && hash.digest('hex') === sha256,
          () => false,
        )
        .then((intact) => {
          entry.leases -= 1;
          if (intact) {
            entry.verified = true;
            return entry;
          }
          this.logger.warn('a cached file no longer matches its digest (the host stopped before it reached the disk?): discarded, it is downloaded again', { sha256 });
          if (this.entries.get(sha256) === entry) this.entries.delete(sha256);
          fs.rmSync(file, { force: true });
          return undefined;
        })
        .finally(() => this.checking.delete(sha256));
      this.checking.set(sha256, check);
    }
    return check;
  }

  /** Removes an entry nobody holds (a test, or an admin clearing space); false when it is in use. */
  remove(sha256: string): boolean {
    const e = this.entries.get(sha256);
    if (!e) return true;
    if (e.leases > 0) return false;
    this.entries.delete(sha256);
    fs.rmSync(path.join(this.blobs, sha256), { force: true });
    return true;
  }

  // ---------------------------------------------------------------- room

  /** Evict least recently used entries nobody holds until `size` more bytes fit. */
  private makeRoom(size: number, what: string): void {
    const max = this.options.maxBytes;
    if (size > max) throw new DownloadError('too_large', `${what} has ${size} bytes, more than the agent's whole download cache (${max} bytes; raise KAPITAN_AGENT_CACHE_BYTES)`);
    const candidates = [...this.entries].filter(([, e]) => e.leases === 0).sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    let used = this.totalBytes() + this.reserved;
    while (used + size > max) {
      const next = candidates.shift();
      if (!next) {
        throw new DownloadError('cache_full', `no room for ${what} (${size} bytes) in the agent's download cache of ${max} bytes: the rest is in use by deliveries in progress`);
      }
      const [sha256, e] = next;
      this.entries.delete(sha256);
      fs.rmSync(path.join(this.blobs, sha256), { force: true });
      used -= e.size;
      this.logger.debug('cache entry evicted', { sha256, size: e.size });
    }
  }

  // ---------------------------------------------------------------- download

  /**
   * A small JSON document from the server with the machine credential (the
   * layer index of an image); null on 404. Bounded to `maxBytes`.
   */
  fetchJson(urlPath: string, maxBytes = 4 * 1024 * 1024): Promise<unknown | null> {
    const url = new URL(urlPath.replace(/^\//, ''), this.base.href.endsWith('/') ? this.base.href : `${this.base.href}/`);
    const get = url.protocol === 'https:' ? https.get : http.get;
    return new Promise((resolve, reject) => {
      const req = get(url, { ...this.options.requestOptions, headers: { Authorization: `Bearer ${this.options.credential}`, Accept: 'application/json' } }, (res) => {
        const status = res.statusCode ?? 0;
        if (status === 404) {
          res.resume();
          return resolve(null);
        }
        if (status !== 200) {
          res.resume();
          return reject(new DownloadError(status === 401 || status === 403 ? 'refused' : 'network', `the server answered HTTP ${status} for ${url.pathname}`));
        }
        const parts: Buffer[] = [];
        let n = 0;
        res.on('data', (c: Buffer) => {
          n += c.length;
          if (n > maxBytes) {
            res.destroy();
            return reject(new DownloadError('size_mismatch', `${url.pathname}: more than ${maxBytes} bytes`));
          }
          parts.push(c);
        });
        res.on('end', () => {
          try {
            resolve(JSON.parse(Buffer.concat(parts).toString('utf8')));
          } catch {
            reject(new DownloadError('io', `${url.pathname}: the answer is not JSON`));
          }
        });
        res.on('error', (err) => reject(new DownloadError('network', err.message)));
      });
      req.setTimeout(this.options.idleTimeoutMs ?? 30_000, () => req.destroy(new Error('no data for too long')));
      req.on('error', (err) => reject(new DownloadError('network', err.message)));
    });
  }

  private async download(ref: FileRef | PartRef, progress: DownloadProgress): Promise<void> {
    const part = 'part' in ref ? ref.part : null;
    const what = part ? part.what : `file ${ref.fileId}`;
    this.makeRoom(ref.size, what);
    this.reserved += ref.size;
    const partial = path.join(this.partials, `${ref.sha256}.part`);
    try {
      fs.rmSync(partial, { force: true });
      fs.writeFileSync(partial, '', { mode: 0o600 });
      const state: Transfer = { hash: createHash('sha256'), received: 0 };
      let resumes = 0;
      const maxResumes = this.options.maxResumes ?? 5;
      let delay = this.options.resumeDelayMs ?? 500;
      // An empty member (a layer with no files can be one) needs no request: no Range can name zero bytes.
      for (; ref.size > 0 || !part; ) {
        // A member is asked for by its exact range: once all of it is on disk (the cut came after the last byte) there is nothing left to ask.
        if (part && resumes > 0 && state.received === ref.size) break;
        try {
          await this.fetchInto(ref, partial, state, (n) => progress(n, ref.size));
          break;
        } catch (err) {
          if (!(err instanceof Transient)) throw err;
          if (resumes >= maxResumes) throw new DownloadError('network', `${what}: the download broke off ${resumes + 1} times (last: ${err.message}); giving up at ${state.received} of ${ref.size} bytes`);
          resumes += 1;
          // What is on disk is what counts: re-hash the prefix kept, so the digest covers exactly those bytes.
          Object.assign(state, await hashFile(partial));
          this.logger.warn('download broke off: resuming', { fileId: ref.fileId, received: state.received, size: ref.size, attempt: resumes, error: err.message });
          await new Promise((r) => setTimeout(r, delay));
          delay *= 2;
        }
      }
      if (state.received !== ref.size) {
        throw new DownloadError('size_mismatch', `${what}: received ${state.received} bytes, the server announced ${ref.size}; discarded`);
      }
      const digest = state.hash.digest('hex');
      if (digest !== ref.sha256) {
        throw new DownloadError(
          'hash_mismatch',
          part
            ? `${what}: the downloaded bytes hash to sha256 ${digest}, not to the sha256:${ref.sha256} it must have; discarded`
            : `${what}: the downloaded bytes hash to sha256 ${digest}, not to the ${ref.sha256} the server announced; discarded`,
        );
      }
      await fs.promises.rename(partial, path.join(this.blobs, ref.sha256));
      this.entries.set(ref.sha256, { size: ref.size, lastUsed: Date.now(), leases: 0, verified: true });
      this.logger.info('file downloaded and verified', { fileId: ref.fileId, sha256: ref.sha256, size: ref.size, resumes });
    } catch (err) {
      fs.rmSync(partial, { force: true });
      if (err instanceof DownloadError) {
        this.logger.warn('download failed', { fileId: ref.fileId, code: err.code, error: err.message });
        throw err;
      }
      throw new DownloadError('io', `${what}: ${(err as Error).message}`);
    } finally {
      this.reserved -= ref.size;
    }
  }

  /**
   * One request from `offset`; appends to `partial` and feeds `hash`.
   * Resolves with the bytes now on disk; a broken connection rejects with
   * Transient (resumable), a refusal with a DownloadError (final).
   */
  private fetchInto(ref: FileRef | PartRef, partial: string, state: Transfer, progress: (received: number) => void): Promise<void> {
    const offset = state.received;
    const part = 'part' in ref ? ref.part : null;
    const url = new URL(agentFileContentPath(ref.fileId).replace(/^\//, ''), this.base.href.endsWith('/') ? this.base.href : `${this.base.href}/`);
    const headers: Record<string, string> = { Authorization: `Bearer ${this.options.credential}` };
    if (part) {
      // Always a range, resumed from what is on disk: the rest of the member, never past it.
      headers.Range = `bytes=${part.offset + offset}-${part.offset + ref.size - 1}`;
      headers['If-Range'] = `"${part.fileSha256}"`;
    } else if (offset > 0) {
      headers.Range = `bytes=${offset}-`;
      // The same bytes or the whole file again: never the tail of something else.
      headers['If-Range'] = `"${ref.sha256}"`;
    }
    const get = url.protocol === 'https:' ? https.get : http.get;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let responded = false;
      const done = (err: Error | null) => {
        if (settled) return;
        settled = true;
        if (err) reject(err);
        else resolve();
      };
      const req = get(url, { ...this.options.requestOptions, headers }, (res) => {
        const status = res.statusCode ?? 0;
        if (status === 401 || status === 403) {
          res.resume();
          return done(new DownloadError('refused', `the server refused this machine's credential for file ${ref.fileId} (HTTP ${status})`));
        }
        if (status === 404) {
          res.resume();
          return done(new DownloadError('not_found', `file ${ref.fileId} is not available to this machine (deleted, or its delivery is over)`));
        }
        if (status !== 200 && status !== 206) {
          res.resume();
          return done(status >= 500 || status === 429 ? new Transient(`HTTP ${status}`) : new DownloadError('refused', `the server answered HTTP ${status} for file ${ref.fileId}`));
        }
        if (part && status !== 206) {
          res.resume();
          return done(new DownloadError('refused', `${part.what}: the server answered HTTP ${status} to a Range request; a member cannot be fetched from it`));
        }
        if (status === 200 && offset > 0) {
          // The server sent the whole file (it ignored the Range): start over.
          state.received = 0;
          state.hash = createHash('sha256');
        }
        // Written through libuv's pool with backpressure, not with writeSync: a
        // disk that throttles writeback then slows this download, not the
        // agent's event loop and every other transfer on it.
        const out = fs.createWriteStream(partial, { flags: status === 200 ? 'w' : 'a', highWaterMark: WRITE_BUFFER_BYTES });
        responded = true;
        // How this attempt ended, known once the write stream has closed: a
        // resume hashes the file again and appends to it, so nothing of this
        // attempt may still be on its way to the disk by then.
        let outcome: Error | null | undefined;
        const end = (why: Error | null) => {
          if (outcome !== undefined) return;
          outcome = why;
          // Ended, not destroyed: what was accepted reaches the disk, and a resume asks only for the rest.
          out.end();
        };
        res.on('data', (chunk: Buffer) => {
          if (outcome !== undefined) return;
          if (state.received + chunk.length > ref.size) {
            res.destroy();
            return end(new DownloadError('size_mismatch', `${part ? part.what : `file ${ref.fileId}`}: the server sent more than the ${ref.size} bytes announced; discarded`));
          }
          state.hash.update(chunk);
          state.received += chunk.length;
          progress(state.received);
          if (!out.write(chunk)) res.pause();
        });
        out.on('drain', () => res.resume());
        res.on('end', () => end(res.complete ? null : new Transient('the response ended early')));
        res.on('error', (err) => end(new Transient(err.message)));
        res.on('close', () => end(new Transient('the connection was cut')));
        // The disk failing (full, read-only) is final, whatever the network did.
        out.on('error', (err) => {
          outcome = err;
          res.destroy();
        });
        out.on('close', () => done(outcome ?? null));
      });
      req.setTimeout(this.options.idleTimeoutMs ?? 30_000, () => req.destroy(new Error('no data for too long')));
      // Once a response is being written to disk, the write stream's close says how it went.
      req.on('error', (err) => responded || done(new Transient(err.message)));
    });
  }
}

interface Transfer {
  hash: Hash;
  received: number;
}

/** A broken transfer worth resuming. */
class Transient extends Error {}

async function hashFile(file: string): Promise<Transfer> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of fs.createReadStream(file)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { hash, received: size };
}
