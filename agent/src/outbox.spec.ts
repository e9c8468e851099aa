import type { ExecutionFinished, OutputChunk } from '@kapitan/shared';
import { executionChannel } from './execution-channel';
import { ENTRY_OVERHEAD_BYTES, Outbox, type OutboxChannel } from './outbox';
import { z } from 'zod';
import { FakeTransport, flushMicrotasks } from './test-support/fake-transport';
import { newId, nextEvent, waitFor } from './test-support/wait';

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

function seqsOf(t: FakeTransport): number[] {
  return t.sent.flatMap((s) => (s.message.event === 'execution:output' ? s.message.payload.chunks.map((c) => c.seq) : []));
}

describe('Outbox', () => {
  it('sends started alone, output in order right behind it, then finished once everything is acknowledged', async () => {
    const ob = new Outbox();
    const id = newId();
    ob.open(executionChannel, id, started(id));
    for (let i = 0; i < 10; i++) ob.add(executionChannel, id, chunk(i));
    ob.close(executionChannel, id, finished(id, 9));
    const t = new FakeTransport();
    ob.attach(t);
    await flushMicrotasks();
    // The output does not wait for the answer to started (a round trip before the first line), but never precedes it.
    expect(t.sent.map((s) => s.message.event)).toEqual(['execution:started', 'execution:output']);
    expect(seqsOf(t)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // Output acknowledged, started not yet: the finish still waits.
    t.answer(t.sent[1]!, null, t.okFor(t.sent[1]!.message));
    await flushMicrotasks();
    expect(t.sent).toHaveLength(2);
    const done = nextEvent(ob, 'done');
    t.ackAll();
    await flushMicrotasks();
    expect(t.sent.at(-1)!.message.event).toBe('execution:finished');
    expect(ob.isEmpty()).toBe(false);
    t.ackAll();
    expect(await done).toEqual([id, 'acked', 'execution']);
    expect(ob.isEmpty()).toBe(true);
    expect(ob.bytes).toBe(0);
  });

  it('keeps at most `window` messages in flight, each within the chunk and byte limits', async () => {
    const ob = new Outbox({ window: 8 });
    const id = newId();
    for (let i = 0; i < 64 * 20; i++) ob.add(executionChannel, id, chunk(i));
    const t = new FakeTransport();
    ob.attach(t);
    await flushMicrotasks();
    expect(t.sent).toHaveLength(8);
    for (const s of t.sent) {
      expect(s.message.event).toBe('execution:output');
      if (s.message.event === 'execution:output') expect(s.message.payload.chunks).toHaveLength(64);
    }
    expect(seqsOf(t)).toEqual(Array.from({ length: 512 }, (_, i) => i));
    // an ack out of order frees its chunks and lets one more message go
    t.answer(t.sent[2]!, null, { ok: true, stored: 64 });
    await flushMicrotasks();
    expect(t.pending()).toHaveLength(8);
    expect(ob.stats().inFlight).toBe(8);
    // everything eventually goes, in order, each once
    t.autoAck = true;
    t.ackAll();
    await waitFor(() => ob.isEmpty(), 'outbox empty');
    expect(seqsOf(t)).toEqual(Array.from({ length: 64 * 20 }, (_, i) => i));
  });

  it('splits messages by encoded size (≤ maxMessageBytes)', async () => {
    const ob = new Outbox({ maxMessageBytes: 512 * 1024 });
    const id = newId();
    const big = 'x'.repeat(100 * 1024);
    for (let i = 0; i < 12; i++) ob.add(executionChannel, id, chunk(i, big));
    // control characters are escaped in JSON: 6 bytes each on the wire
    ob.add(executionChannel, id, chunk(12, '\u0001'.repeat(64 * 1024)));
    const t = new FakeTransport();
    t.autoAck = true;
    ob.attach(t);
    await waitFor(() => ob.isEmpty(), 'outbox empty');
    for (const s of t.sent) {
      const bytes = Buffer.byteLength(JSON.stringify(s.message.payload));
      expect(bytes).toBeLessThan(600 * 1024);
    }
    expect(t.sent.map((s) => (s.message.event === 'execution:output' ? s.message.payload.chunks.length : 0))).toEqual([5, 5, 2, 1]);
  });

  it('after a disconnect, sends everything unacknowledged again in sequence order', async () => {
    const ob = new Outbox({ window: 4 });
    const id = newId();
    ob.open(executionChannel, id, started(id));
    const t1 = new FakeTransport();
    ob.attach(t1);
    await flushMicrotasks();
    t1.ackAll(); // started stored
    for (let i = 0; i < 64 * 6; i++) ob.add(executionChannel, id, chunk(i));
    ob.close(executionChannel, id, finished(id, 64 * 6 - 1));
    await flushMicrotasks();
    expect(t1.pending()).toHaveLength(4);
    t1.answer(t1.sent[1]!, null, { ok: true, stored: 64 }); // seq 0..63 stored
    await flushMicrotasks();
    ob.detach();
    // acks that were lost with the connection
    for (const s of t1.pending()) s.answered = true;
    expect(ob.keys(executionChannel)).toEqual([id]);

    const t2 = new FakeTransport();
    ob.attach(t2);
    await flushMicrotasks();
    expect(seqsOf(t2).slice(0, 4)).toEqual([64, 65, 66, 67]);
    t2.autoAck = true;
    t2.ackAll();
    await waitFor(() => ob.isEmpty(), 'outbox empty');
    expect(seqsOf(t2)).toEqual(Array.from({ length: 64 * 5 }, (_, i) => i + 64));
    expect(t2.sent.at(-1)!.message.event).toBe('execution:finished');
    expect(t2.sent.filter((s) => s.message.event === 'execution:started')).toHaveLength(0);
  });

  it('a late ok ack of a message given up on still frees its chunks', async () => {
    const ob = new Outbox();
    const id = newId();
    for (let i = 0; i < 3; i++) ob.add(executionChannel, id, chunk(i));
    const t1 = new FakeTransport();
    ob.attach(t1);
    await flushMicrotasks();
    const first = t1.sent[0]!;
    ob.detach();
    const t2 = new FakeTransport();
    ob.attach(t2);
    await flushMicrotasks();
    expect(seqsOf(t2)).toEqual([0, 1, 2]);
    t1.answer(first, null, { ok: true, stored: 3 }); // the old ack arrives after all
    expect(ob.isEmpty()).toBe(true);
    t2.ackAll(); // and the duplicate ack changes nothing
    expect(ob.bytes).toBe(0);
  });

  it('drops events the server refuses for good, and moves on', async () => {
    const ob = new Outbox();
    const id = newId();
    const other = newId();
    ob.add(executionChannel, id, chunk(0));
    ob.close(executionChannel, id, finished(id, 0));
    ob.add(executionChannel, other, chunk(0));
    const t = new FakeTransport();
    ob.attach(t);
    await flushMicrotasks();
    const dropped = nextEvent(ob, 'dropped');
    const first = t.sent.find((s) => s.message.event === 'execution:output' && s.message.payload.executionId === id)!;
    t.answer(first, null, { ok: false, error: { code: 'forbidden', message: 'not your execution' } });
    const [exId, kinds, error] = await dropped;
    expect(exId).toBe(id);
    expect(kinds).toEqual(['output']);
    expect(error).toMatchObject({ code: 'forbidden' });
    await flushMicrotasks();
    const fin = t.sent.find((s) => s.message.event === 'execution:finished')!;
    const done = nextEvent(ob, 'done');
    t.answer(fin, null, { ok: false, error: { code: 'not_found', message: 'no such execution' } });
    expect(await done).toEqual([id, 'refused', 'execution']);
    t.ackAll();
    expect(ob.isEmpty()).toBe(true);
    // nothing refused is ever sent again
    await flushMicrotasks();
    expect(t.pending()).toHaveLength(0);
  });

  it('keeps and resends after a transient error ack or a missing ack', async () => {
    const ob = new Outbox({ retryMaxMs: 20 });
    const id = newId();
    ob.add(executionChannel, id, chunk(0));
    ob.add(executionChannel, id, chunk(1));
    const t = new FakeTransport();
    ob.attach(t);
    await flushMicrotasks();
    expect(t.sent).toHaveLength(1);
    t.answer(t.sent[0]!, null, { ok: false, error: { code: 'service_unavailable', message: 'database down' } });
    await waitFor(() => t.sent.length === 2, 'resend after a transient error');
    expect(seqsOf(t)).toEqual([0, 1, 0, 1]);
    t.answer(t.sent[1]!, new Error('operation has timed out'));
    await waitFor(() => t.sent.length === 3, 'resend after a timeout');
    t.answer(t.sent[2]!, null, 'garbage'); // malformed ack: keep
    await waitFor(() => t.sent.length === 4, 'resend after a malformed ack');
    t.ackAll();
    expect(ob.isEmpty()).toBe(true);
    ob.detach();
  });

  it('gives up on events that keep getting an internal error', async () => {
    const ob = new Outbox({ retryMaxMs: 5 });
    const id = newId();
    ob.add(executionChannel, id, chunk(0));
    const t = new FakeTransport();
    ob.attach(t);
    const dropped = nextEvent(ob, 'dropped');
    for (let i = 0; i < 5; i++) {
      await waitFor(() => t.pending().length === 1, `attempt ${i + 1}`);
      t.answer(t.pending()[0]!, null, { ok: false, error: { code: 'internal_error', message: 'bug' } });
    }
    expect((await dropped)[2]).toMatchObject({ code: 'internal_error' });
    expect(t.sent).toHaveLength(5);
    expect(ob.isEmpty()).toBe(true);
  });

  it('a repeated dispatch re-sends the execution’s unacknowledged events', async () => {
    const ob = new Outbox();
    const id = newId();
    ob.add(executionChannel, id, chunk(0));
    const t = new FakeTransport();
    ob.attach(t);
    await flushMicrotasks();
    ob.resend(executionChannel, id);
    await flushMicrotasks();
    expect(seqsOf(t)).toEqual([0, 0]);
    t.ackAll();
    expect(ob.isEmpty()).toBe(true);
  });

  it('is bounded in bytes: full at the bound, drain under half of it, nothing dropped', async () => {
    const perChunk = Buffer.byteLength(JSON.stringify('y'.repeat(1000))) + ENTRY_OVERHEAD_BYTES;
    const ob = new Outbox({ maxBytes: perChunk * 10 });
    const id = newId();
    let fulls = 0;
    let drains = 0;
    ob.on('full', () => fulls++);
    ob.on('drain', () => drains++);
    for (let i = 0; i < 9; i++) ob.add(executionChannel, id, chunk(i, 'y'.repeat(1000)));
    expect(ob.full).toBe(false);
    ob.add(executionChannel, id, chunk(9, 'y'.repeat(1000)));
    expect(ob.full).toBe(true);
    expect(fulls).toBe(1);
    // producing more while full is still accepted (the producer is expected to pause)
    ob.add(executionChannel, id, chunk(10, 'y'.repeat(1000)));
    expect(ob.stats().entries).toBe(11);
    const t = new FakeTransport();
    ob.attach(t);
    await flushMicrotasks();
    t.ackAll();
    expect(drains).toBe(1);
    expect(ob.full).toBe(false);
    expect(seqsOf(t)).toEqual(Array.from({ length: 11 }, (_, i) => i));
  });

  it('whenEmpty resolves once everything is acknowledged', async () => {
    const ob = new Outbox();
    expect(await ob.whenEmpty(10)).toBe(true);
    const id = newId();
    ob.add(executionChannel, id, chunk(0));
    expect(await ob.whenEmpty(20)).toBe(false);
    const t = new FakeTransport();
    t.autoAck = true;
    ob.attach(t);
    expect(await ob.whenEmpty(1000)).toBe(true);
  });

  it('serves several executions fairly within the window', async () => {
    const ob = new Outbox({ window: 2 });
    const a = newId();
    const b = newId();
    for (let i = 0; i < 64 * 4; i++) ob.add(executionChannel, a, chunk(i));
    ob.add(executionChannel, b, chunk(0));
    const t = new FakeTransport();
    ob.attach(t);
    await flushMicrotasks();
    expect(t.sent.map((s) => (s.message.event === 'execution:output' ? s.message.payload.executionId : ''))).toEqual([a, b]);
    t.autoAck = true;
    t.ackAll();
    await waitFor(() => ob.isEmpty(), 'outbox empty');
  });

  it('carries any stream: another channel beside the executions, with its own keys, events and labels, and no open entry', async () => {
    // a stand-in for container logs or download progress: items and a close, mapped onto an agent → server event
    const probe: OutboxChannel<never, string, string> = {
      name: 'probe',
      labels: { open: 'open', item: 'tick', close: 'end' },
      schemas: { item: z.string(), close: z.string() },
      itemsMessage: (_key, items) => ({ event: 'agent:heartbeat', payload: { at: items.join(',') } }),
      closeMessage: (_key, at) => ({ event: 'agent:heartbeat', payload: { at } }),
      bytes: (_phase, v) => String(v).length,
    };
    const ob = new Outbox();
    const id = newId();
    ob.add(probe, id, 'a');
    ob.add(probe, id, 'b');
    ob.close(probe, id, 'z');
    const st = started(id);
    ob.open(executionChannel, id, st); // same key, other channel: a separate stream
    const t = new FakeTransport();
    ob.attach(t);
    await flushMicrotasks();
    expect(t.sent.map((s) => s.message)).toEqual([
      { event: 'agent:heartbeat', payload: { at: 'a,b' } },
      { event: 'execution:started', payload: st },
    ]);
    expect(ob.keys(probe)).toEqual([id]);
    expect(ob.keys(executionChannel)).toEqual([id]);
    const done = nextEvent(ob, 'done');
    t.ackAll();
    await flushMicrotasks();
    t.answer(t.pending()[0]!, null, { ok: false, error: { code: 'forbidden', message: 'no' } });
    expect(await done).toEqual([id, 'refused', 'probe']);
    expect(ob.keys(probe)).toEqual([]);
    expect(ob.keys(executionChannel)).toEqual([]);
  });
});
