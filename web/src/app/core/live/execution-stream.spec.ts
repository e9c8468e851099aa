import type { ExecutionChunksAck, ExecutionSummary, OutputChunk } from '@kapitan/shared';
import { ExecutionStream, type ExecutionFeedEvent, type ExecutionTransport } from './execution-stream';

const EXEC_ID = '11111111-1111-4111-8111-111111111111';

function summary(status: ExecutionSummary['status']): ExecutionSummary {
  return {
    id: EXEC_ID,
    runId: '22222222-2222-4222-8222-222222222222',
    projectId: '33333333-3333-4333-8333-333333333333',
    machineId: '44444444-4444-4444-8444-444444444444',
    status,
    exitCode: status === 'succeeded' ? 0 : null,
    signal: null,
    reason: null,
    createdAt: '2026-01-01T00:00:00.000Z',
    dispatchedAt: null,
    startedAt: '2026-01-01T00:00:01.000Z',
    finishedAt: null,
    durationMs: null,
  };
}

const chunk = (seq: number, stream: OutputChunk['stream'] = 'stdout'): OutputChunk => ({ seq, stream, data: `line ${seq}\n` });
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => chunk(from + i));

/** A server holding `stored` chunks; history answers from it, like the real gateway. */
class FakeServer implements ExecutionTransport {
  stored: OutputChunk[] = [];
  status: ExecutionSummary['status'] = 'running';
  subscribes: number[] = [];
  histories: number[] = [];
  pageSize = 1000;

  subscribe(fromSeq: number): Promise<ExecutionChunksAck> {
    this.subscribes.push(fromSeq);
    return Promise.resolve(this.page(fromSeq));
  }

  history(fromSeq: number): Promise<ExecutionChunksAck> {
    this.histories.push(fromSeq);
    return Promise.resolve(this.page(fromSeq));
  }

  private page(fromSeq: number): ExecutionChunksAck {
    const chunks = this.stored.filter((c) => c.seq >= fromSeq).slice(0, this.pageSize);
    const last = chunks[chunks.length - 1];
    return { ok: true, execution: summary(this.status), chunks, nextSeq: last ? last.seq + 1 : fromSeq };
  }
}

function setup(server = new FakeServer()) {
  const events: ExecutionFeedEvent[] = [];
  const stream = new ExecutionStream(server, (e) => events.push(e));
  const rendered = () => events.flatMap((e) => (e.type === 'output' ? e.chunks.map((c) => c.seq) : []));
  const gaps = () => events.filter((e) => e.type === 'gap');
  return { server, stream, events, rendered, gaps };
}

/** Lets promise callbacks run (fake timers do not touch microtasks). */
const flush = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

describe('ExecutionStream', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('renders the history, then the live tail, each chunk once and in order', async () => {
    const { server, stream, rendered } = setup();
    server.stored = range(0, 4);
    stream.connect();
    await flush();
    stream.onLive([chunk(3), chunk(4), chunk(5)]); // overlaps the history
    stream.onLive([chunk(6)]);
    await flush();
    expect(rendered()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(server.subscribes).toEqual([0]);
  });

  it('pages in history the subscribe ack did not carry', async () => {
    const { server, stream, rendered } = setup();
    server.pageSize = 3;
    server.stored = range(0, 7);
    stream.connect();
    await flush();
    expect(rendered()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(server.histories).toEqual([3, 6, 8]);
  });

  it('live chunks that arrive before the history ack are not lost or doubled', async () => {
    const { server, stream, rendered } = setup();
    server.stored = range(0, 2);
    stream.connect(); // ack pending
    stream.onLive([chunk(3), chunk(4)]); // ahead of everything: buffered
    await flush();
    expect(rendered()).toEqual([0, 1, 2, 3, 4]);
  });

  it('asks for a gap that persists past 300 ms, and not before', async () => {
    const { server, stream, rendered } = setup();
    stream.connect();
    await flush();
    server.stored = range(0, 3); // stored, but chunk 1 never came live
    stream.onLive([chunk(0)]);
    stream.onLive([chunk(2), chunk(3)]);
    await flush();
    expect(rendered()).toEqual([0]);
    const asked = server.histories.length;
    await vi.advanceTimersByTimeAsync(250);
    expect(server.histories.length).toBe(asked);
    await vi.advanceTimersByTimeAsync(100);
    await flush();
    expect(server.histories.slice(asked)[0]).toBe(1); // then one more ask, for anything after it
    expect(rendered()).toEqual([0, 1, 2, 3]);
  });

  it('does not ask when the live tail fills the gap in time', async () => {
    const { server, stream, rendered } = setup();
    stream.connect();
    await flush();
    const asked = server.histories.length;
    stream.onLive([chunk(0), chunk(2)]);
    await vi.advanceTimersByTimeAsync(100);
    stream.onLive([chunk(1)]);
    await vi.advanceTimersByTimeAsync(2000);
    expect(server.histories.length).toBe(asked);
    expect(rendered()).toEqual([0, 1, 2]);
  });

  it('resumes from the next expected chunk after a reconnect', async () => {
    const { server, stream, rendered } = setup();
    server.stored = range(0, 2);
    stream.connect();
    await flush();
    stream.disconnect();
    server.stored = range(0, 5); // written while we were away
    stream.connect();
    await flush();
    expect(server.subscribes).toEqual([0, 3]);
    expect(rendered()).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('skips a gap the server does not have once the execution is final, with a visible note', async () => {
    const { server, stream, rendered, gaps } = setup();
    server.status = 'succeeded';
    server.stored = [chunk(0), chunk(1), chunk(4), chunk(5)]; // 2 and 3 were lost
    stream.connect();
    await flush();
    expect(rendered()).toEqual([0, 1]);
    await vi.advanceTimersByTimeAsync(400);
    await flush();
    expect(gaps()).toEqual([{ type: 'gap', fromSeq: 2, toSeq: 3 }]);
    expect(rendered()).toEqual([0, 1, 4, 5]);
  });

  it('keeps waiting (with back-off) for a gap while the execution runs', async () => {
    const { server, stream, rendered, gaps } = setup();
    server.stored = [chunk(0), chunk(2)];
    stream.connect();
    await flush();
    await vi.advanceTimersByTimeAsync(300 + 600 + 1200);
    await flush();
    expect(gaps()).toEqual([]);
    const asks = server.histories.filter((s) => s === 1).length;
    expect(asks).toBeGreaterThanOrEqual(2);
    expect(asks).toBeLessThanOrEqual(4);
    // the agent resends chunk 1 after its reconnect
    server.stored = [chunk(0), chunk(1), chunk(2)];
    stream.onLive([chunk(1)]);
    expect(rendered()).toEqual([0, 1, 2]);
  });

  it('sweeps for trailing output after the execution turns final', async () => {
    const { server, stream, rendered } = setup();
    server.stored = range(0, 1);
    stream.connect();
    await flush();
    server.stored = range(0, 3); // 2 and 3 stored but never forwarded to us
    server.status = 'succeeded';
    stream.onExecution(summary('succeeded'));
    await vi.advanceTimersByTimeAsync(350);
    await flush();
    expect(rendered()).toEqual([0, 1, 2, 3]);
  });

  it('reports an error ack and stops', async () => {
    const events: ExecutionFeedEvent[] = [];
    const stream = new ExecutionStream(
      {
        subscribe: () => Promise.resolve({ ok: false, error: { code: 'not_found', message: 'execution not found' } }),
        history: () => Promise.reject(new Error('unexpected')),
      },
      (e) => events.push(e),
    );
    stream.connect();
    await flush();
    expect(events).toEqual([{ type: 'error', message: 'execution not found' }]);
  });

  it('ignores answers to requests made before a disconnect', async () => {
    let resolve!: (a: ExecutionChunksAck) => void;
    const events: ExecutionFeedEvent[] = [];
    const stream = new ExecutionStream(
      {
        subscribe: () => new Promise((r) => (resolve = r)),
        history: () => Promise.resolve({ ok: true, execution: summary('running'), chunks: [], nextSeq: 0 }),
      },
      (e) => events.push(e),
    );
    stream.connect();
    stream.disconnect();
    resolve({ ok: true, execution: summary('running'), chunks: [chunk(0)], nextSeq: 1 });
    await flush();
    expect(events).toEqual([]);
  });
});
