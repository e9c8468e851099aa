import type { OutputChunk } from '@kapitan/shared';

/**
 * Puts the output chunks of one execution back in order, exactly once.
 *
 * History (from the subscribe/history acks) and the live tail arrive on separate
 * paths and may overlap or race; a reconnect replays from where we were. Chunks
 * below the next expected sequence number are duplicates and dropped; chunks
 * ahead of it wait in a buffer until the gap before them is filled (or given up
 * on with {@link skipGap}).
 */
export class ChunkSequencer {
  private next: number;
  private readonly ahead = new Map<number, OutputChunk>();

  constructor(fromSeq = 0) {
    this.next = fromSeq;
  }

  /** The sequence number the renderer needs next. */
  get expected(): number {
    return this.next;
  }

  /** Chunks held back behind a gap. */
  get buffered(): number {
    return this.ahead.size;
  }

  get hasGap(): boolean {
    return this.ahead.size > 0;
  }

  /** The lowest buffered sequence number: the gap runs from `expected` to just before it. */
  get gapEnd(): number | null {
    let min: number | null = null;
    for (const s of this.ahead.keys()) if (min === null || s < min) min = s;
    return min;
  }

  /**
   * Takes chunks in any order and returns those now ready to render, in order.
   * `accepted` counts chunks not seen before (ready or buffered).
   */
  accept(chunks: readonly OutputChunk[]): { ready: OutputChunk[]; accepted: number } {
    let accepted = 0;
    for (const c of chunks) {
      if (c.seq < this.next || this.ahead.has(c.seq)) continue;
      this.ahead.set(c.seq, c);
      accepted++;
    }
    return { ready: this.drain(), accepted };
  }

  /**
   * Gives up on the current gap: jumps to the first buffered chunk. Returns the
   * skipped range and the chunks that became ready, or null when there is no gap.
   */
  skipGap(): { fromSeq: number; toSeq: number; ready: OutputChunk[] } | null {
    const end = this.gapEnd;
    if (end === null) return null;
    const fromSeq = this.next;
    this.next = end;
    return { fromSeq, toSeq: end - 1, ready: this.drain() };
  }

  private drain(): OutputChunk[] {
    const ready: OutputChunk[] = [];
    for (let c = this.ahead.get(this.next); c !== undefined; c = this.ahead.get(this.next)) {
      this.ahead.delete(this.next);
      ready.push(c);
      this.next++;
    }
    return ready;
  }
}
