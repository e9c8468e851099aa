import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Enrolment token, machine credential, API token. */
export type SecretKind = 'kpe' | 'kpm' | 'kpt';

/**
 * Bearer secrets of the form `<kind>_<id>.<secret>`: the id finds the row in
 * one indexed read, the secret is compared by its sha256. 256 random bits
 * need no slow KDF; a leaked table still reveals no usable credential.
 */
export function mintSecret(kind: SecretKind, id: string): { token: string; hash: string } {
  const secret = randomBytes(32).toString('base64url');
  return { token: `${kind}_${id}.${secret}`, hash: sha256(secret) };
}

export function parseSecret(kind: SecretKind, token: unknown): { id: string; secret: string } | null {
  if (typeof token !== 'string') return null;
  const m = new RegExp(`^${kind}_([0-9a-f-]{36})\\.([A-Za-z0-9_-]{43})$`).exec(token);
  return m ? { id: m[1], secret: m[2] } : null;
}

export function secretMatches(secret: string, storedHash: string | null): boolean {
  if (!storedHash) return false;
  const a = Buffer.from(sha256(secret), 'hex');
  const b = Buffer.from(storedHash, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

export const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
