import {
  CreateSecretRequestSchema,
  issueDetails,
  maskPatterns,
  maskSecrets,
  SECRET_LIMITS,
  SecretMasker,
  SecretReferencesSchema,
  UpdateSecretRequestSchema,
} from './index';

/** Runs `chunks` through one masker and joins what it returned, flush included. */
function streamed(chunks: string[], masks: string[]): string {
  const m = new SecretMasker(masks);
  return chunks.map((c) => m.push(c)).join('') + m.flush();
}

/** A small seeded generator: the random cases are the same on every run, and a failure names its seed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('maskSecrets', () => {
  it('replaces every occurrence with ***', () => {
    expect(maskSecrets('pw=hunter22; again hunter22.', ['hunter22'])).toBe('pw=***; again ***.');
    expect(maskSecrets('hunter22hunter22', ['hunter22'])).toBe('******');
    expect(maskSecrets('nothing here', ['hunter22'])).toBe('nothing here');
  });

  it('hides the longer of two secrets where one contains the other, leaving no tail in clear', () => {
    expect(maskSecrets('token=abcd1234', ['abcd', 'abcd1234'])).toBe('token=***');
    expect(maskSecrets('token=abcd1234', ['abcd1234', 'abcd'])).toBe('token=***');
  });

  it('hides two overlapping secrets as one span (replacing one after the other would leak the rest of the second)', () => {
    expect(maskSecrets('xx abcdef yy', ['abcd', 'cdef'])).toBe('xx *** yy');
    // A secret overlapping itself: "aaaa" in "aaaaaa".
    expect(maskSecrets('aaaaaa', ['aaaa'])).toBe('***');
  });

  it('masks each line of a multi-line secret on its own, whatever its line ends come out as', () => {
    const key = '-----BEGIN KEY-----\r\nMIIEpAIBAAKCAQEA\nzq8Y0Yb3\n-----END KEY-----\n';
    expect(maskSecrets(`cat: ${key}`, [key])).toBe('cat: ***\r\n***\n***\n***\n');
    expect(maskSecrets(`cat: ${key.replace(/\r?\n/g, '\r\n')}`, [key])).toBe('cat: ***\r\n***\r\n***\r\n***\r\n');
    expect(maskSecrets('line 2 is MIIEpAIBAAKCAQEA and 3 is zq8Y0Yb3', [key])).toBe('line 2 is *** and 3 is ***');
    // Lines only, so a streaming masker holds back about a line, not the whole key.
    const patterns = maskPatterns([key]);
    for (const line of ['-----BEGIN KEY-----', '-----END KEY-----', 'MIIEpAIBAAKCAQEA', 'zq8Y0Yb3']) expect(patterns).toContain(line);
    expect(patterns.some((p) => p.includes('\n'))).toBe(false);
    const m = new SecretMasker([key]);
    m.push('x'.repeat(100));
    expect(m.pending).toBe(patterns[0].length - 1);
    expect(m.pending).toBeLessThan(30);
  });

  it(`ignores masks and lines shorter than ${SECRET_LIMITS.maskMinLength} characters, and empty ones`, () => {
    expect(maskSecrets('a 42 abc', ['', 'a', '42', 'abc'])).toBe('a 42 abc');
    expect(maskSecrets('ab, longer', ['ab\nlonger'])).toBe('ab, ***');
    expect(maskSecrets('ab, longer', ['ab\nlonger', 'ab'])).toBe('ab, ***');
    // A line too short to mask stays visible even as part of its secret: the rule is the same everywhere.
    expect(maskSecrets('ab\nlonger', ['ab\nlonger'])).toBe('ab\n***');
    expect(maskPatterns(['', 'xyz', 'ab\ncd'])).toEqual([]);
    expect(maskPatterns(['abcd'])).toContain('abcd');
  });

  it('masks the secret JSON-escaped, URL-encoded and in base64, as scripts print it by accident', () => {
    const tricky = 'pa"ss\\wörd';
    expect(maskSecrets(JSON.stringify({ password: tricky }), [tricky])).toBe('{"password":"***"}');
    const url = 'p@ss w0rd/&';
    expect(maskSecrets(`postgres://app:${encodeURIComponent(url)}@db:5432/app`, [url])).toBe('postgres://app:***@db:5432/app');
    // Inside base64 at each of the three alignments, with other bytes before and after it (a Basic auth header).
    for (const before of ['', 'u', 'us', 'user:']) {
      for (const after of ['', '!', '!!']) {
        const b64 = Buffer.from(`${before}hunter22${after}`).toString('base64');
        const masked = maskSecrets(`Authorization: Basic ${b64}`, ['hunter22']);
        expect(masked).toContain('***');
        // What is left is only the characters the surrounding bytes share: at most theirs plus one at each edge.
        const left = masked.replace('Authorization: Basic ', '').replace('***', '');
        expect(left.replace(/=+$/, '').length).toBeLessThanOrEqual(Math.ceil(((before.length + after.length) * 4) / 3) + 2);
      }
    }
  });

  it('works on any text: unicode, regex characters, empty input', () => {
    expect(maskSecrets('clé: pässwörd€🔑!', ['pässwörd€🔑'])).toBe('clé: ***!');
    expect(maskSecrets('a.*b+c?(d) a.*b+c?(d)', ['.*b+c?(d)'])).toBe('a*** a***');
    expect(maskSecrets('$&$& x', ['$&$&'])).toBe('*** x');
    expect(maskSecrets('', ['secret'])).toBe('');
    expect(maskSecrets('text', [])).toBe('text');
  });
});

describe('SecretMasker', () => {
  it('masks a secret cut across two, three or one-character chunks', () => {
    expect(streamed(['pw=hun', 'ter22 ok'], ['hunter22'])).toBe('pw=*** ok');
    expect(streamed(['pw=h', 'unte', 'r22', ' ok'], ['hunter22'])).toBe('pw=*** ok');
    expect(streamed([...'pw=hunter22 ok'], ['hunter22'])).toBe('pw=*** ok');
  });

  it('holds back no more than the longest mask − 1 characters, and returns the rest at once', () => {
    const masks = ['hunter22', 'abcd'];
    const keep = maskPatterns(masks)[0].length - 1;
    // The longest pattern is "hunter22" in base64 (10 characters at any alignment).
    expect(keep).toBe(9);
    const m = new SecretMasker(masks);
    expect(m.push('x'.repeat(100))).toBe('x'.repeat(100 - keep));
    expect(m.pending).toBe(keep);
    expect(m.push('hunt')).toBe('xxxx');
    const outs: string[] = [];
    for (const piece of ['er22', '\n', 'tail', ' and more text after it']) {
      outs.push(m.push(piece));
      expect(m.pending).toBeLessThanOrEqual(keep);
    }
    // Once enough text follows the secret, its stars have gone out.
    expect(outs.join('')).toContain('***');
    expect(outs.join('') + m.flush()).toBe('x'.repeat(5) + '***\ntail and more text after it');
    expect(m.pending).toBe(0);
    // Without masks nothing is held back.
    const none = new SecretMasker(['', 'ab']);
    expect(none.push('hello')).toBe('hello');
    expect(none.pending).toBe(0);
  });

  it('shows no part of a secret before it is complete, even when the stream stops in the middle', () => {
    const m = new SecretMasker(['hunter22']);
    const shown = m.push('log: hunter2');
    expect(shown).not.toContain('h');
    // The stream ends without completing it: the prefix was not the secret, so it is shown.
    expect(shown + m.flush()).toBe('log: hunter2');
  });

  it('masks a secret that overlaps one already masked in an earlier chunk', () => {
    // "abcd" is complete (and masked) in the first push; "cdefgh" continues into the second.
    expect(streamed(['xxabcdef', 'gh yy'], ['abcd', 'cdefgh'])).toBe('xx*** yy');
    expect(streamed(['xxabcd', 'efgh yy'], ['abcd', 'cdefgh'])).toBe('xx*** yy');
    expect(streamed(['aaaaaa', 'aa b'], ['aaaa'])).toBe('*** b');
  });

  it('never cuts a surrogate pair in two, with or without masks', () => {
    const key = '🔑';
    for (const masks of [[], ['zzzzzzzz']]) {
      const m = new SecretMasker(masks);
      const text = `${'a'.repeat(7)}${key}b${key}`;
      const pieces = [text.slice(0, 8), text.slice(8, 10), text.slice(10)];
      const out = pieces.map((p) => m.push(p));
      for (const piece of out) {
        if (piece.length) expect(piece.charCodeAt(piece.length - 1) >= 0xd800 && piece.charCodeAt(piece.length - 1) <= 0xdbff).toBe(false);
      }
      expect(out.join('') + m.flush()).toBe(text);
    }
  });

  it('returns, however the input is cut, exactly what maskSecrets returns for the whole (seeded random cases)', () => {
    const alphabet = ['a', 'b', 'c', '\n', 'é', '🔑'];
    for (let seed = 1; seed <= 400; seed++) {
      const rnd = prng(seed);
      const pick = () => alphabet[Math.floor(rnd() * alphabet.length)];
      const word = (n: number) => Array.from({ length: n }, pick).join('');
      const masks = Array.from({ length: 1 + Math.floor(rnd() * 3) }, () => word(3 + Math.floor(rnd() * 6)));
      // Text made of bits of the masks and noise, so matches, overlaps and near-misses are common.
      const text = Array.from({ length: 30 }, () => (rnd() < 0.4 ? masks[Math.floor(rnd() * masks.length)].slice(0, 2 + Math.floor(rnd() * 8)) : word(1 + Math.floor(rnd() * 3)))).join('');
      const chunks: string[] = [];
      for (let i = 0; i < text.length; ) {
        const n = Math.floor(rnd() * 9);
        chunks.push(text.slice(i, i + n));
        i += n;
      }
      const expected = maskSecrets(text, masks);
      const got = streamed(chunks, masks);
      if (got !== expected) throw new Error(`seed ${seed}: masks ${JSON.stringify(masks)} chunks ${JSON.stringify(chunks)}: ${JSON.stringify(got)} != ${JSON.stringify(expected)}`);
    }
  });

  it('leaves no mask pattern in what it returns (seeded random cases)', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const rnd = prng(seed * 7919);
      const secret = 'S3cr3t-' + Math.floor(rnd() * 1e6);
      const text = Array.from({ length: 20 }, () => (rnd() < 0.3 ? secret : 'noise ')).join('');
      const chunks: string[] = [];
      for (let i = 0; i < text.length; ) {
        const n = 1 + Math.floor(rnd() * 12);
        chunks.push(text.slice(i, i + n));
        i += n;
      }
      expect(streamed(chunks, [secret])).not.toContain(secret);
    }
  });
});

describe('secret schemas', () => {
  it('take names like environment variables', () => {
    for (const name of ['A', '_', 'DB_PASSWORD', 'X1', 'A'.repeat(128)]) {
      expect(CreateSecretRequestSchema.safeParse({ name, value: 'v' }).success).toBe(true);
    }
    for (const name of ['', 'db_password', '1ABC', 'A-B', 'A B', 'A'.repeat(129), 'É']) {
      const r = CreateSecretRequestSchema.safeParse({ name, value: 'v' });
      expect(r.success).toBe(false);
      expect(issueDetails(r.error!).map((d) => d.path)).toEqual(['name']);
    }
  });

  it('bound values in UTF-8 bytes and refuse NUL and empty values, naming the field', () => {
    const euro = '€'; // 3 bytes
    const fits = euro.repeat(Math.floor(SECRET_LIMITS.valueMaxBytes / 3));
    expect(UpdateSecretRequestSchema.safeParse({ value: fits }).success).toBe(true);
    for (const value of [fits + euro, 'a\0b', '', 42]) {
      const r = UpdateSecretRequestSchema.safeParse({ value });
      expect(r.success).toBe(false);
      expect(issueDetails(r.error!).map((d) => d.path)).toEqual(['value']);
    }
  });

  it('refuse unknown fields', () => {
    const r = CreateSecretRequestSchema.safeParse({ name: 'A', value: 'v', projectId: 'x' });
    expect(issueDetails(r.error!).map((d) => d.path)).toEqual(['projectId']);
  });

  it('bound references and refuse one named twice', () => {
    expect(SecretReferencesSchema.safeParse(['A', 'B']).success).toBe(true);
    expect(SecretReferencesSchema.safeParse(['A', 'A']).success).toBe(false);
    expect(SecretReferencesSchema.safeParse(['a']).success).toBe(false);
    expect(SecretReferencesSchema.safeParse(Array.from({ length: SECRET_LIMITS.referencesMax + 1 }, (_, i) => `S${i}`)).success).toBe(false);
  });
});
