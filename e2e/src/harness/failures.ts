import fs from 'node:fs/promises';
import path from 'node:path';
import { ARTIFACTS_DIR, slug } from './paths';

/** What a failure hook learns about the failure. */
export interface FailureInfo {
  testName: string;
  error: unknown;
}
export type FailureHook = (failure: FailureInfo) => Promise<void> | void;

type HookGlobal = typeof globalThis & { __kapitanFailureHooks?: Set<FailureHook> };

/**
 * Run `hook` when a test (or a hook) of the current file fails, before its
 * afterEach/afterAll run (see e2e/jest.environment.cjs). Returns the
 * unregister function.
 */
export function onTestFailure(hook: FailureHook): () => void {
  const g = globalThis as HookGlobal;
  g.__kapitanFailureHooks ??= new Set();
  g.__kapitanFailureHooks.add(hook);
  return () => g.__kapitanFailureHooks?.delete(hook);
}

/** The artifact folder of one failed test, created on demand. */
export async function artifactDir(testName: string): Promise<string> {
  const file = path.basename(expect.getState().testPath ?? 'unknown', '.spec.ts');
  const dir = path.join(ARTIFACTS_DIR, slug(file, 40), slug(testName));
  await fs.mkdir(dir, { recursive: true });
  return dir;
}
