import type { OutputChunk } from '@kapitan/shared';
import { ChunkSequencer } from './chunk-sequencer';

const c = (seq: number, data = `l${seq}\n`, stream: OutputChunk['stream'] = 'stdout'): OutputChunk => ({ seq, stream, data });
const seqs = (chunks: OutputChunk[]) => chunks.map((x) => x.seq);

describe('ChunkSequencer', () => {
  it('passes in-order chunks straight through', () => {
    const s = new ChunkSequencer();
    expect(seqs(s.accept([c(0), c(1)]).ready)).toEqual([0, 1]);
    expect(seqs(s.accept([c(2)]).ready)).toEqual([2]);
    expect(s.expected).toBe(3);
    expect(s.hasGap).toBe(false);
  });

  it('drops duplicates: history overlapping the live tail renders each chunk once', () => {
    const s = new ChunkSequencer();
    s.accept([c(0), c(1), c(2)]); // live
    const r = s.accept([c(0), c(1), c(2), c(3)]); // history ack covering the same range
    expect(seqs(r.ready)).toEqual([3]);
    expect(r.accepted).toBe(1);
    expect(s.accept([c(3), c(1)]).ready).toEqual([]);
  });

  it('holds chunks that arrive ahead of a gap and releases them in order once it fills', () => {
    const s = new ChunkSequencer();
    s.accept([c(0)]);
    const ahead = s.accept([c(3), c(2)]);
    expect(ahead.ready).toEqual([]);
    expect(ahead.accepted).toBe(2);
    expect(s.hasGap).toBe(true);
    expect(s.gapEnd).toBe(2);
    expect(s.buffered).toBe(2);
    expect(seqs(s.accept([c(1)]).ready)).toEqual([1, 2, 3]);
    expect(s.hasGap).toBe(false);
    expect(s.expected).toBe(4);
  });

  it('does not double a buffered chunk delivered again before the gap fills', () => {
    const s = new ChunkSequencer();
    s.accept([c(2)]);
    expect(s.accept([c(2)]).accepted).toBe(0);
    expect(seqs(s.accept([c(0), c(1)]).ready)).toEqual([0, 1, 2]);
  });

  it('resumes from a given sequence number (reconnect)', () => {
    const s = new ChunkSequencer(10);
    expect(s.accept([c(9)]).ready).toEqual([]);
    expect(seqs(s.accept([c(10)]).ready)).toEqual([10]);
  });

  it('skips a gap that will not fill and reports its range', () => {
    const s = new ChunkSequencer();
    s.accept([c(0), c(4), c(5)]);
    const skipped = s.skipGap();
    expect(skipped).toEqual({ fromSeq: 1, toSeq: 3, ready: [c(4), c(5)] });
    expect(s.expected).toBe(6);
    // a late chunk from the skipped range is now a duplicate
    expect(s.accept([c(2)]).ready).toEqual([]);
    expect(new ChunkSequencer().skipGap()).toBeNull();
  });
});
