/**
 * Everything the harness starts (processes, databases, temp dirs, sockets,
 * browsers) registers its disposal here; jest.setup.ts runs them all in an
 * afterAll of every test file, last started first. A test may still stop
 * things itself earlier; disposal functions must be idempotent.
 */
type Cleanup = { name: string; fn: () => Promise<void> | void };
const cleanups: Cleanup[] = [];

export function registerCleanup(name: string, fn: () => Promise<void> | void): () => void {
  const entry = { name, fn };
  cleanups.push(entry);
  return () => {
    const i = cleanups.indexOf(entry);
    if (i >= 0) cleanups.splice(i, 1);
  };
}

/** Runs and forgets every registered cleanup, newest first; throws one error naming all that failed. */
export async function runCleanups(): Promise<void> {
  const errors: string[] = [];
  while (cleanups.length > 0) {
    const { name, fn } = cleanups.pop()!;
    try {
      await fn();
    } catch (error) {
      errors.push(`${name}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  if (errors.length > 0) throw new Error(`cleanup failed:\n${errors.join('\n')}`);
}
