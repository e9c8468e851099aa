/**
 * What the agent must remember across restarts about executions:
 *
 * - the ids it has already accepted (dispatch is at-least-once: a repeated
 *   dispatch must not run the script twice), bounded to the last 10,000;
 * - the executions that are active: running, or finished with the final
 *   event not yet acknowledged. After a crash or restart, each one is
 *   reported `lost` (or its saved final event is re-sent).
 *
 * {@link FileJournal} keeps both in the state directory; {@link MemoryJournal}
 * is for tests and simulated agents.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { ExecutionFinishedSchema, type ExecutionFinished } from '@kapitan/shared';
import { ensurePrivateDir, writeFileAtomic } from './state';
import { silentLogger, type Logger } from './logger';

export const KNOWN_IDS_MAX = 10_000;
export const KNOWN_FILE = 'known-executions';
export const ACTIVE_FILE = 'active-executions.json';
/** How often a changed lastSeq is written at most. */
export const LAST_SEQ_FLUSH_MS = 500;

const ActiveRecordSchema = z.object({
  executionId: z.string().min(1),
  /** pid of the script, which is also its process group id; null before spawn. */
  pid: z.number().int().positive().nullable(),
  /** Start time of that pid (/proc/<pid>/stat) and the boot id: tells our process from a reused pid. */
  procStart: z.string().nullable(),
  bootId: z.string().nullable(),
  startedAt: z.string().nullable(),
  /**
   * Last output sequence number written, journalled at most every
   * LAST_SEQ_FLUSH_MS: after a crash it may lag behind what was really
   * produced (approximate by design; the server lists gaps either way).
   */
  lastSeq: z.number().int().min(-1),
  /** The per-execution scratch directory, removed when the execution is forgotten. */
  dir: z.string().nullable(),
  /** Set once the process ended: this final event is re-sent until acknowledged. */
  finished: ExecutionFinishedSchema.nullable(),
});
export type ActiveExecutionRecord = z.infer<typeof ActiveRecordSchema>;

const ActiveFileSchema = z.object({ version: z.literal(1), executions: z.array(ActiveRecordSchema) });

export interface ExecutionJournal {
  /** Was this execution id accepted before (running, finished or forgotten)? */
  isKnown(executionId: string): boolean;
  addKnown(executionId: string): void;
  listActive(): ActiveExecutionRecord[];
  getActive(executionId: string): ActiveExecutionRecord | undefined;
  /** Insert or replace; durable when this returns. */
  putActive(record: ActiveExecutionRecord): void;
  /** Record the last sequence number; written lazily (see LAST_SEQ_FLUSH_MS). */
  updateLastSeq(executionId: string, lastSeq: number): void;
  setFinished(executionId: string, finished: ExecutionFinished): void;
  removeActive(executionId: string): void;
  flush(): void;
  close(): void;
}

/** Insertion-ordered set that forgets its oldest ids past `max`. */
class BoundedIdSet {
  private readonly ids = new Set<string>();
  constructor(private readonly max: number) {}
  has(id: string): boolean {
    return this.ids.has(id);
  }
  add(id: string): boolean {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    while (this.ids.size > this.max) {
      const oldest = this.ids.values().next().value as string;
      this.ids.delete(oldest);
    }
    return true;
  }
  values(): string[] {
    return [...this.ids];
  }
  get size(): number {
    return this.ids.size;
  }
}

export class MemoryJournal implements ExecutionJournal {
  protected readonly known: BoundedIdSet;
  protected readonly active = new Map<string, ActiveExecutionRecord>();
  constructor(maxKnown = KNOWN_IDS_MAX) {
    this.known = new BoundedIdSet(maxKnown);
  }
  isKnown(id: string): boolean {
    return this.known.has(id);
  }
  addKnown(id: string): void {
    this.known.add(id);
  }
  listActive(): ActiveExecutionRecord[] {
    return [...this.active.values()].map((r) => ({ ...r }));
  }
  getActive(id: string): ActiveExecutionRecord | undefined {
    const r = this.active.get(id);
    return r ? { ...r } : undefined;
  }
  putActive(record: ActiveExecutionRecord): void {
    this.active.set(record.executionId, { ...record });
  }
  updateLastSeq(id: string, lastSeq: number): void {
    const r = this.active.get(id);
    if (r) r.lastSeq = lastSeq;
  }
  setFinished(id: string, finished: ExecutionFinished): void {
    const r = this.active.get(id);
    if (r) {
      r.finished = finished;
      r.lastSeq = finished.lastSeq;
    }
  }
  removeActive(id: string): void {
    this.active.delete(id);
  }
  flush(): void {}
  close(): void {}
}

const ID_LINE = /^[0-9A-Za-z-]{1,100}$/;

/**
 * Journal files in the state directory: `known-executions` (append-only, one
 * id a line, compacted to the last 10,000 ids) and `active-executions.json`
 * (rewritten atomically when an execution starts or ends).
 */
export class FileJournal extends MemoryJournal {
  private readonly knownFile: string;
  private readonly activeFile: string;
  private knownLines = 0;
  private dirty = false;
  private flushTimer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    readonly dir: string,
    private readonly logger: Logger = silentLogger,
    private readonly maxKnown = KNOWN_IDS_MAX,
  ) {
    super(maxKnown);
    ensurePrivateDir(dir);
    this.knownFile = path.join(dir, KNOWN_FILE);
    this.activeFile = path.join(dir, ACTIVE_FILE);
    this.loadKnown();
    this.loadActive();
  }

  private loadKnown(): void {
    let text = '';
    try {
      text = fs.readFileSync(this.knownFile, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const lines = text.split('\n');
    let bad = 0;
    for (const line of lines) {
      if (line === '') continue;
      if (ID_LINE.test(line)) this.known.add(line);
      else bad++;
    }
    this.knownLines = lines.length;
    if (bad > 0 || this.knownLines > 2 * this.maxKnown) this.compactKnown();
  }

  private compactKnown(): void {
    const ids = this.known.values();
    writeFileAtomic(this.knownFile, ids.length ? ids.join('\n') + '\n' : '', 0o600);
    this.knownLines = ids.length;
  }

  private loadActive(): void {
    let text: string;
    try {
      text = fs.readFileSync(this.activeFile, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    let parsed: z.infer<typeof ActiveFileSchema> | null = null;
    try {
      const r = ActiveFileSchema.safeParse(JSON.parse(text));
      if (r.success) parsed = r.data;
    } catch {
      parsed = null;
    }
    if (!parsed) {
      const aside = `${this.activeFile}.corrupt-${Date.now()}`;
      this.logger.error('active executions journal is unreadable; moved aside', { file: aside });
      fs.renameSync(this.activeFile, aside);
      return;
    }
    for (const r of parsed.executions) this.active.set(r.executionId, r);
  }

  override addKnown(id: string): void {
    if (!this.known.add(id) || this.closed) return;
    fs.appendFileSync(this.knownFile, id + '\n', { mode: 0o600 });
    this.knownLines++;
    if (this.knownLines > 2 * this.maxKnown) this.compactKnown();
  }

  override putActive(record: ActiveExecutionRecord): void {
    super.putActive(record);
    this.writeActive();
  }

  override setFinished(id: string, finished: ExecutionFinished): void {
    super.setFinished(id, finished);
    this.writeActive();
  }

  override removeActive(id: string): void {
    if (!this.active.has(id)) return;
    super.removeActive(id);
    this.writeActive();
  }

  override updateLastSeq(id: string, lastSeq: number): void {
    const r = this.active.get(id);
    if (!r || r.lastSeq === lastSeq) return;
    r.lastSeq = lastSeq;
    this.dirty = true;
    if (!this.flushTimer && !this.closed) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = null;
        if (this.dirty) this.writeActive();
      }, LAST_SEQ_FLUSH_MS);
      this.flushTimer.unref();
    }
  }

  override flush(): void {
    if (this.dirty) this.writeActive();
  }

  /** Write what is pending; after this the journal no longer touches its files. */
  override close(): void {
    this.flush();
    this.closed = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
  }

  private writeActive(): void {
    this.dirty = false;
    if (this.closed) return; // another process may own the state directory now
    const body: z.infer<typeof ActiveFileSchema> = { version: 1, executions: [...this.active.values()] };
    try {
      writeFileAtomic(this.activeFile, JSON.stringify(body) + '\n', 0o600);
    } catch (err) {
      this.logger.error('could not write the active executions journal', { err });
    }
  }
}
