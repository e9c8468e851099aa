import { TimeoutError, waitFor, withDeadline } from './wait';

describe('waitFor', () => {
  it('resolves with the first truthy value, checking until then', async () => {
    let calls = 0;
    const value = await waitFor(() => (++calls >= 3 ? { done: calls } : undefined), { intervalMs: 10 });
    expect(value).toEqual({ done: 3 });
    expect(calls).toBe(3);
  });

  it('treats a throw as "not yet" and names the last error at the deadline', async () => {
    const started = Date.now();
    const error = await waitFor(
      () => {
        throw new Error('HTTP 404');
      },
      { timeoutMs: 300, intervalMs: 20, message: 'project listed' },
    ).catch((e: unknown) => e);
    const elapsed = Date.now() - started;
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as Error).message).toMatch(/project listed not reached within 300 ms .*last error: HTTP 404/);
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(1_000);
  });

  it('names the last value at the deadline', async () => {
    await expect(waitFor(() => false, { timeoutMs: 100, intervalMs: 10 })).rejects.toThrow(/last value: false/);
  });

  it('keeps its deadline when a check hangs', async () => {
    const started = Date.now();
    await expect(waitFor(() => new Promise<boolean>(() => undefined), { timeoutMs: 200 })).rejects.toThrow(
      /the first check did not finish/,
    );
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('never runs two checks at once, and pauses intervalMs between them', async () => {
    let running = 0;
    let maxRunning = 0;
    const starts: number[] = [];
    await waitFor(
      async () => {
        starts.push(Date.now());
        running++;
        maxRunning = Math.max(maxRunning, running);
        await new Promise((r) => setTimeout(r, 30));
        running--;
        return starts.length >= 4;
      },
      { intervalMs: 50, timeoutMs: 5_000 },
    );
    expect(maxRunning).toBe(1);
    for (let i = 1; i < starts.length; i++) expect(starts[i]! - starts[i - 1]!).toBeGreaterThanOrEqual(75);
  });
});

describe('withDeadline', () => {
  it('passes the result through', async () => {
    await expect(withDeadline(Promise.resolve(7), 100, 'x')).resolves.toBe(7);
  });
  it('rejects with the message at the deadline', async () => {
    await expect(withDeadline(new Promise(() => undefined), 50, 'agent online')).rejects.toThrow('agent online (deadline 50 ms)');
  });
});
