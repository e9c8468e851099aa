import { Logger } from '@nestjs/common';
import { currentRequestSlot } from './request-principal';
import { asRequest, seenContext } from '../testing/as-request';
import { SchedulerService, type SchedulerTimers } from './scheduler.service';

/** Hand-driven timers: a test fires the interval when it wants, no clock involved. */
function manualTimers() {
  const fns = new Map<number, () => void>();
  let next = 1;
  const timers: SchedulerTimers = {
    setInterval: (fn) => {
      const id = next++;
      fns.set(id, fn);
      return { id, unref: () => undefined } as never;
    },
    clearInterval: (h) => fns.delete((h as { id: number }).id),
    setTimeout: (fn) => {
      const id = next++;
      fns.set(id, fn);
      return { id, unref: () => undefined } as never;
    },
    clearTimeout: (h) => h && fns.delete((h as { id: number }).id),
  };
  return { timers, fire: () => [...fns.values()].forEach((f) => f()), count: () => fns.size };
}

describe('SchedulerService', () => {
  beforeAll(() => Logger.overrideLogger(false)); // the failed-run warnings are expected here
  afterAll(() => Logger.overrideLogger(['log', 'error', 'warn', 'debug', 'verbose']));
  it('runs a job at every tick, never two runs of it at once', async () => {
    const t = manualTimers();
    const s = new SchedulerService(t.timers);
    let runs = 0;
    let release: () => void = () => undefined;
    s.every('job', 1000, () => {
      runs++;
      return new Promise<void>((r) => (release = r));
    });
    t.fire();
    t.fire(); // still running: skipped
    expect(runs).toBe(1);
    const fresh = s.runNow('job'); // waits for the run in progress, then runs a pass of its own
    expect(runs).toBe(1);
    const releaseFirst = release;
    releaseFirst();
    for (let i = 0; i < 100 && runs < 2; i++) await Promise.resolve();
    expect(runs).toBe(2);
    expect(release).not.toBe(releaseFirst);
    t.fire(); // runNow's pass is running: skipped
    expect(runs).toBe(2);
    release();
    await fresh;
    t.fire(); // the previous run ended: a new one starts
    expect(runs).toBe(3);
    release();
  });

  it('runNow never joins a run that began before the call: the caller gets a whole pass of its own', async () => {
    const t = manualTimers();
    const s = new SchedulerService(t.timers);
    let input = 'old';
    const seen: string[] = [];
    const releases: (() => void)[] = [];
    s.every('job', 1000, () => {
      seen.push(input); // a pass reads its inputs when it starts
      return new Promise<void>((r) => releases.push(r));
    });
    t.fire();
    input = 'new';
    const pass = s.runNow('job');
    releases[0]!();
    // A bounded wait (microtasks only): joining the first run would start no second one.
    for (let i = 0; i < 100 && releases.length < 2; i++) await Promise.resolve();
    expect(seen).toEqual(['old', 'new']);
    releases[1]!();
    await pass;
  });

  it('logs a failed run and keeps the job', async () => {
    const t = manualTimers();
    const s = new SchedulerService(t.timers);
    let runs = 0;
    s.every('flaky', 1000, async () => {
      runs++;
      throw new Error('database away');
    });
    await s.runNow('flaky');
    await s.runNow('flaky');
    expect(runs).toBe(2);
  });

  it('refuses a second job of the same name', () => {
    const s = new SchedulerService(manualTimers().timers);
    s.every('a', 1000, async () => undefined);
    expect(() => s.every('a', 1000, async () => undefined)).toThrow(/already registered/);
  });

  it('stops every timer at shutdown and waits for the run in progress', async () => {
    const t = manualTimers();
    const s = new SchedulerService(t.timers);
    let finished = false;
    s.every('slow', 1000, async () => {
      await new Promise((r) => setImmediate(r));
      finished = true;
    });
    t.fire();
    await s.onModuleDestroy();
    expect(finished).toBe(true);
    expect(t.count()).toBe(0);
    s.every('late', 1000, async () => undefined); // after shutdown: never started
    expect(t.count()).toBe(0);
  });
});

describe('SchedulerService.timed', () => {
  it('re-arms after each run with the delay the task answers, capped; wake runs it at once; shutdown stops it', async () => {
    const delays: number[] = [];
    const pending: (() => void)[] = [];
    const timers: SchedulerTimers = {
      setInterval: () => ({}),
      clearInterval: () => undefined,
      setTimeout: (fn, ms) => {
        delays.push(ms);
        pending.push(fn);
        return { unref: () => undefined };
      },
      clearTimeout: () => undefined,
    };
    const s = new SchedulerService(timers);
    const answers = [250, 99_999];
    let runs = 0;
    s.timed('t', 1000, async () => {
      runs++;
      return answers.shift() ?? 1000;
    });
    expect(delays).toEqual([0]);
    const flush = async () => {
      for (let i = 0; i < 5; i++) await Promise.resolve();
    };
    pending.shift()?.();
    await flush();
    expect(runs).toBe(1);
    expect(delays).toEqual([0, 250]);
    pending.shift()?.();
    await flush();
    expect(delays).toEqual([0, 250, 1000]); // capped
    s.wake('t');
    expect(delays).toEqual([0, 250, 1000, 0]);
    await s.onModuleDestroy();
    s.wake('t');
    expect(delays).toHaveLength(4);
  });
});

describe('SchedulerService: a job runs outside the request that woke it', () => {
  const inRequest = <T>(fn: () => T): T => asRequest('a', fn);

  it('wake and runNow from inside a request: the runs and the timers they arm see no request slot and no caller context', async () => {
    const s = new SchedulerService();
    const seen: { slot: unknown; caller: unknown }[] = [];
    let ran: () => void = () => undefined;
    s.timed('t', 60_000, async () => {
      seen.push(seenContext());
      ran();
      return 60_000;
    });
    const nextRun = () => new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the job did not run within 5 s')), 5000);
      ran = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    try {
      await nextRun(); // the first run, armed at registration
      const woken = nextRun();
      inRequest(() => {
        // The request really has its slot: the check below would see it if the job inherited it.
        expect(currentRequestSlot()?.principal?.apiToken?.projectId).toBe('p-a');
        s.wake('t');
      });
      await woken;
      await inRequest(() => s.runNow('t'));
      expect(seen).toHaveLength(3);
      expect(seen).toEqual(seen.map(() => ({ slot: undefined, caller: undefined })));
    } finally {
      await s.onModuleDestroy();
    }
  });
});
