import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ExecutionFinished, OutputChunk } from '@kapitan/shared';
import { executionChannel } from './execution-channel';
import { ENTRY_OVERHEAD_BYTES, Outbox } from './outbox';
import { FileSpool } from './spool';
import { FakeTransport, flushMicrotasks } from './test-support/fake-transport';
import { newId, tmpDir, waitFor } from './test-support/wait';

const started = (executionId: string) => ({ executionId, startedAt: new Date().toISOString(), pid: 123 });
const finished = (executionId: string, lastSeq: number): ExecutionFinished => ({
  executionId,
  status: 'succeeded',
  exitCode: 0,
  signal: null,
  finishedAt: new Date().toISOString(),
  lastSeq,
  reason: null,
});
const chunk = (seq: number, data = `line ${seq}\n`): OutputChunk => ({ seq, stream: seq % 3 === 0 ? 'stderr' : 'stdout', data });
const seqsOf = (t: FakeTransport): number[] =>
  t.sent.flatMap((s) => (s.message.event === 'execution:output' ? s.message.payload.chunks.map((c) => c.seq) : []));

let dir: string;
beforeEach(() => (dir = tmpDir()));
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

/** An outbox on the spool in `dir`, as a fresh agent process would build it. */
function outboxOn(options: { segmentBytes?: number; maxBytes?: number } = {}): { ob: Outbox; spool: FileSpool } {
  const spool = new FileSpool(dir, { segmentBytes: options.segmentBytes });
  return { ob: new Outbox({ spool, maxBytes: options.maxBytes }), spool };
}

function spoolBytes(): number {
  let n = 0;
  for (const f of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const st = fs.statSync(path.join(dir, f));
    if (st.isFile()) n += st.size;
  }
  return n;
}

describe('FileSpool under the outbox', () => {
  it('a new process gets back, in order, every entry the old one had not had acknowledged', async () => {
    const id = newId();
    const a = outboxOn();
    a.ob.open(executionChannel, id, started(id));
    const t = new FakeTransport();
    a.ob.attach(t);
    await flushMicrotasks();
    t.ackAll(); // started stored
    for (let i = 0; i < 100; i++) a.ob.add(executionChannel, id, chunk(i));
    await flushMicrotasks();
    t.answer(t.sent[1]!, null, { ok: true, stored: 64 }); // seq 0..63 stored, 64..99 in flight: the ack is lost with the process
    a.spool.close(); // the process dies: nothing more is written

    const b = outboxOn();
    const restored = b.ob.restore([executionChannel]);
    expect(restored).toEqual([{ channel: 'execution', key: id, opened: false, closed: false, lastItem: chunk(99), items: 36 }]);
    b.ob.close(executionChannel, id, finished(id, 99));
    const t2 = new FakeTransport();
    t2.autoAck = true;
    b.ob.attach(t2);
    await waitFor(() => b.ob.isEmpty(), 'everything acknowledged');
    expect(seqsOf(t2)).toEqual(Array.from({ length: 36 }, (_, i) => 64 + i));
    expect(t2.sent.map((s) => s.message.event)).toEqual(['execution:output', 'execution:finished']);
    // the close acknowledged: nothing left on disk for it
    expect(fs.readdirSync(path.join(dir, 'execution'))).toEqual([]);
  });

  it('a crash right after a restore loses nothing and doubles nothing: the restored entries were spooled again', () => {
    const id = newId();
    const a = outboxOn();
    for (let i = 0; i < 5; i++) a.ob.add(executionChannel, id, chunk(i));
    a.spool.close();
    const b = outboxOn();
    b.ob.restore([executionChannel]);
    b.spool.close(); // crash right after the restore: the entries were spooled again
    const c = outboxOn();
    const [r] = c.ob.restore([executionChannel]);
    expect(r!.items).toBe(5); // once each, not twice
    expect(c.ob.stats().entries).toBe(5);
  });

  it('skips a torn last line (crash mid-write) and entries that do not parse', () => {
    const id = newId();
    const a = outboxOn();
    a.ob.add(executionChannel, id, chunk(0));
    a.ob.add(executionChannel, id, chunk(1));
    a.spool.close();
    const seg = path.join(dir, 'execution', id, '0.seg');
    fs.appendFileSync(seg, '[2,"i",{"seq":2,"stream":"stdout","data":"x"}]\n[3,"i",{"seq":"bad"}]\n[4,"i",{"seq":4,"str');
    const b = outboxOn();
    const [r] = b.ob.restore([executionChannel]);
    expect(r).toMatchObject({ items: 3, lastItem: { seq: 2 } });
  });

  it('rotates segments and deletes the acknowledged ones: disk stays near what is unacknowledged', async () => {
    const id = newId();
    const { ob } = outboxOn({ segmentBytes: 4096 });
    const t = new FakeTransport();
    t.autoAck = true;
    ob.attach(t);
    for (let i = 0; i < 2000; i++) {
      ob.add(executionChannel, id, chunk(i, 'z'.repeat(200)));
      if (i % 100 === 99) await flushMicrotasks();
    }
    await waitFor(() => ob.isEmpty(), 'all acknowledged');
    // 400 KB went through; at most the current segment (plus ack marks) remains
    expect(spoolBytes()).toBeLessThan(4096 + 1024);
  });

  it('is bounded like the outbox: at the bound the producer is told to stop, and the spool holds no more than that', () => {
    const data = 'y'.repeat(1000);
    const perChunk = Buffer.byteLength(JSON.stringify(data)) + ENTRY_OVERHEAD_BYTES;
    const { ob } = outboxOn({ maxBytes: perChunk * 50, segmentBytes: 8192 });
    const id = newId();
    let seq = 0;
    // the producer's rule (manager.ts): stop reading once the outbox is full
    while (!ob.full) ob.add(executionChannel, id, chunk(seq++, data));
    expect(seq).toBe(50);
    expect(spoolBytes()).toBeLessThan(perChunk * 50 + 8192);
  });

  it('a stream that drains between bursts keeps numbering on, so an old ack mark never hides new output', async () => {
    const id = newId();
    const a = outboxOn();
    const t = new FakeTransport();
    t.autoAck = true;
    a.ob.attach(t);
    for (let i = 0; i < 3; i++) a.ob.add(executionChannel, id, chunk(i));
    await waitFor(() => a.ob.isEmpty(), 'first burst acknowledged');
    a.ob.detach();
    a.ob.add(executionChannel, id, chunk(3));
    a.spool.close();
    const b = outboxOn();
    const [r] = b.ob.restore([executionChannel]);
    expect(r).toMatchObject({ items: 1, lastItem: chunk(3) });
  });
});
