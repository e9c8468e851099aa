/** Test helpers: wait on conditions and events with deadlines (never sleep-and-hope). */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Poll `fn` until it returns a truthy value; fail with `message` after `timeoutMs`. */
export async function waitFor<T>(
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  message = 'condition',
  timeoutMs = 10_000,
  intervalMs = 10,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${message}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

interface Emitterish {
  once(event: string, fn: (...args: any[]) => void): unknown;
  off(event: string, fn: (...args: any[]) => void): unknown;
}

/** The arguments of the next `event`, or a failure after `timeoutMs`. */
export function nextEvent<A extends unknown[] = unknown[]>(emitter: Emitterish, event: string, timeoutMs = 10_000): Promise<A> {
  return new Promise((resolve, reject) => {
    const fn = (...args: unknown[]): void => {
      clearTimeout(timer);
      resolve(args as A);
    };
    const timer = setTimeout(() => {
      emitter.off(event, fn);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for event ${event}`));
    }, timeoutMs);
    emitter.once(event, fn);
  });
}

export function tmpDir(prefix = 'kapitan-agent-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export const newId = (): string => randomUUID();

/** Is the process alive? A zombie (dead, not yet reaped by an init that may never reap it) counts as dead. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
