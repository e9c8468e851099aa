import { createSecretKey, type KeyObject } from 'node:crypto';

let cached: { secret: string; key: KeyObject } | null = null;

/**
 * The HMAC key of access tokens as a KeyObject, made once per secret.
 *
 * Handed a string, jsonwebtoken tries on every verify (and sign) to parse it
 * as a PEM key, catches the throw, and only then makes a secret key: about
 * 5 % of the server's CPU in a run-after-run benchmark, half a millisecond
 * of every authenticated request. Given a KeyObject it uses it as it is.
 */
export function jwtKey(secret: string): KeyObject {
  if (cached?.secret !== secret) cached = { secret, key: createSecretKey(Buffer.from(secret, 'utf8')) };
  return cached.key;
}

/**
 * The same key typed as the wrappers declare it: passport-jwt's and
 * @nestjs/jwt's option types name `string | Buffer` only, while the
 * jsonwebtoken they call takes a KeyObject.
 */
export const jwtKeyOption = (secret: string): string => jwtKey(secret) as unknown as string;
