import path from 'node:path';

/** The repository root (the npm workspace root). */
export const REPO_ROOT = path.resolve(__dirname, '../../..');
export const E2E_DIR = path.join(REPO_ROOT, 'e2e');
/** Screenshots and process logs of failed tests (gitignored). */
export const ARTIFACTS_DIR = path.join(E2E_DIR, '.artifacts');

export const SERVER_ENTRY = path.join(REPO_ROOT, 'server/dist/main.js');
export const AGENT_ENTRY = path.join(REPO_ROOT, 'agent/dist/main.js');
export const WEB_INDEX = path.join(REPO_ROOT, 'web/dist/web/browser/index.html');

/** A file-system-safe slug of a test name, for artifact file names. */
export function slug(text: string, max = 80): string {
  const s = text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return (s || 'unnamed').slice(0, max);
}
