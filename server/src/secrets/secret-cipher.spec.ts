import { randomBytes, randomUUID } from 'node:crypto';
import { SecretCipher, SecretUnreadableError } from './secret-cipher';

const cipherWith = (key: Buffer, keyId = 'k1') => new SecretCipher({ secrets: { key, keyId } });

/** The sealing itself, no I/O: what it hides, what binds a value to its row, and how it refuses. */
describe('SecretCipher', () => {
  const key = randomBytes(32);
  const c = cipherWith(key);
  const project = randomUUID();

  it('opens what it sealed, unicode and multi-line values included', () => {
    for (const value of ['hunter22', 'pässwörd €🔑', '-----BEGIN KEY-----\nabc\n-----END KEY-----\n', 'x'.repeat(32 * 1024)]) {
      expect(c.open(project, 'A', c.seal(project, 'A', value))).toBe(value);
    }
  });

  it('uses a fresh 96-bit nonce for every value: the same value twice seals differently', () => {
    const a = c.seal(project, 'A', 'same value');
    const b = c.seal(project, 'A', 'same value');
    expect(Buffer.from(a.nonce, 'base64')).toHaveLength(12);
    expect(a.nonce).not.toBe(b.nonce);
    expect(a.ciphertext).not.toBe(b.ciphertext);
    expect(a.keyId).toBe('k1');
  });

  it('never holds the value in clear, in any encoding', () => {
    const value = 'correct horse battery staple';
    const sealed = JSON.stringify(c.seal(project, 'A', value));
    for (const enc of [value, Buffer.from(value).toString('base64'), Buffer.from(value).toString('hex')]) expect(sealed).not.toContain(enc);
  });

  it('refuses a value moved to another project or another name (the row is the associated data)', () => {
    const sealed = c.seal(project, 'DB_PASSWORD', 'hunter22');
    expect(() => c.open(randomUUID(), 'DB_PASSWORD', sealed)).toThrow(SecretUnreadableError);
    expect(() => c.open(project, 'API_TOKEN', sealed)).toThrow(/integrity check/);
  });

  it('refuses an altered ciphertext, tag or nonce, and a damaged row, instead of returning garbage', () => {
    const sealed = c.seal(project, 'A', 'hunter22');
    const flip = (b64: string, at: number) => {
      const b = Buffer.from(b64, 'base64');
      b[at] ^= 1;
      return b.toString('base64');
    };
    expect(() => c.open(project, 'A', { ...sealed, ciphertext: flip(sealed.ciphertext, 0) })).toThrow(SecretUnreadableError);
    expect(() => c.open(project, 'A', { ...sealed, ciphertext: flip(sealed.ciphertext, 20) })).toThrow(SecretUnreadableError);
    expect(() => c.open(project, 'A', { ...sealed, nonce: flip(sealed.nonce, 3) })).toThrow(SecretUnreadableError);
    expect(() => c.open(project, 'A', { ...sealed, nonce: 'AAAA' })).toThrow(/damaged/);
    expect(() => c.open(project, 'A', { ...sealed, ciphertext: '' })).toThrow(/damaged/);
  });

  it('says which key is wrong: another key id names both keys and the variable', () => {
    const sealed = c.seal(project, 'A', 'hunter22');
    const other = cipherWith(randomBytes(32), 'k2');
    expect(() => other.open(project, 'A', sealed)).toThrow(/sealed with key k1.*KAPITAN_SECRETS_KEY is key k2/);
    // Another key under the same id (should never happen): still refused, never garbage.
    expect(() => cipherWith(randomBytes(32), 'k1').open(project, 'A', sealed)).toThrow(SecretUnreadableError);
  });
});
