import { z } from 'zod';
import { IdSchema, IsoDateSchema } from './common';

/** Bounds of project secrets; the server, the agent and the dashboard agree on them. */
export const SECRET_LIMITS = {
  /** UTF-8 bytes of one value. */
  valueMaxBytes: 32 * 1024,
  /** Secrets one project may hold. */
  perProjectMax: 200,
  /** Secrets one run or schedule may reference. */
  referencesMax: 64,
  /**
   * Masks (and lines of multi-line secrets) shorter than this are not masked:
   * replacing every "a" or "42" in the output would wreck the log and, by
   * where the stars fall, tell the value anyway. The dashboard warns when a
   * value is this short.
   */
  maskMinLength: 4,
} as const;

/** What a masked secret looks like in output (as in GitHub Actions). */
export const SECRET_MASK = '***';

/** A secret's name is the environment variable the run sees. */
export const SecretNameSchema = z
  .string()
  .regex(/^[A-Z_][A-Z0-9_]{0,127}$/, 'names are like environment variables: A-Z, 0-9 and _, not starting with a digit, at most 128');
export type SecretName = z.infer<typeof SecretNameSchema>;

const encoder = new TextEncoder();

export const SecretValueSchema = z
  .string()
  .min(1, 'a secret cannot be empty')
  .refine((v) => !v.includes('\0'), 'must not contain a NUL character (an environment variable cannot hold one)')
  .refine((v) => encoder.encode(v).length <= SECRET_LIMITS.valueMaxBytes, `at most ${SECRET_LIMITS.valueMaxBytes} bytes`);

export const CreateSecretRequestSchema = z.strictObject({ name: SecretNameSchema, value: SecretValueSchema });
export type CreateSecretRequest = z.infer<typeof CreateSecretRequestSchema>;

/** Rotation: a new value under the same name. */
export const UpdateSecretRequestSchema = z.strictObject({ value: SecretValueSchema });
export type UpdateSecretRequest = z.infer<typeof UpdateSecretRequestSchema>;

/** Who made or last changed a secret; null once that account is gone. */
export const SecretActorSchema = z.object({ userId: IdSchema, email: z.string() }).nullable();
export type SecretActor = z.infer<typeof SecretActorSchema>;

/** A secret as the API shows it, to every member: its name and history, never its value. */
export const SecretSchema = z.object({
  name: SecretNameSchema,
  createdAt: IsoDateSchema,
  createdBy: SecretActorSchema,
  updatedAt: IsoDateSchema,
  updatedBy: SecretActorSchema,
});
export type Secret = z.infer<typeof SecretSchema>;

/**
 * The secrets a run or schedule asks for, by name (for its request body):
 * each is injected as the environment variable of that name and masked in
 * its output.
 */
export const SecretReferencesSchema = z
  .array(SecretNameSchema)
  .max(SECRET_LIMITS.referencesMax)
  .refine((names) => new Set(names).size === names.length, 'names a secret twice');

// ---------------------------------------------------------------------------
// Masking

/**
 * The strings to hide for a set of secret values, longest first: a
 * single-line value as it is; a multi-line value line by line (as GitHub
 * does), so it is hidden however its line ends come out (\n, \r\n) and a
 * script printing a key file line by line shows none of it. The whole
 * multi-line value is not a pattern of its own: its lines already hide it,
 * and a streaming masker holds back (longest pattern − 1) characters, so a
 * 3 KiB key as one pattern would hold 3 KiB of live output instead of a line.
 *
 * Each of those is also hidden in the encodings scripts most often print a
 * secret in by accident, as GitHub's runner does: JSON-escaped (a config
 * dumped as JSON), URL-encoded (a connection string) and base64 at each of
 * its three alignments (`echo -n "user:$PASSWORD" | base64`, a Basic auth
 * header), keeping only the base64 characters the secret alone decides.
 * Patterns shorter than SECRET_LIMITS.maskMinLength are dropped.
 */
export function maskPatterns(masks: readonly string[]): string[] {
  const plain = new Set<string>();
  for (const m of masks) {
    if (typeof m !== 'string') continue;
    if (/[\r\n]/.test(m)) for (const line of m.split(/\r\n|\n|\r/)) plain.add(line);
    else plain.add(m);
  }
  const out = new Set<string>();
  for (const p of plain) {
    if (p.length < SECRET_LIMITS.maskMinLength) continue;
    out.add(p);
    out.add(JSON.stringify(p).slice(1, -1));
    const uri = uriEncoded(p);
    if (uri) out.add(uri);
    for (const b of base64Forms(p)) out.add(b);
  }
  return [...out].filter((m) => m.length >= SECRET_LIMITS.maskMinLength).sort((a, b) => b.length - a.length);
}

function uriEncoded(s: string): string | null {
  try {
    return encodeURIComponent(s);
  } catch {
    return null; // a lone surrogate has no URL encoding
  }
}

/**
 * The secret's UTF-8 bytes as they appear inside any base64 text, for each
 * of the three offsets (mod 3) at which they can start: only the characters
 * whose 6 bits all come from the secret, not from the bytes around it.
 */
function base64Forms(s: string): string[] {
  const bytes = encoder.encode(s);
  const forms: string[] = [];
  for (let shift = 0; shift < 3; shift++) {
    const padded = new Uint8Array(shift + bytes.length);
    padded.set(bytes, shift);
    const b64 = toBase64(padded);
    const first = Math.ceil((8 * shift) / 6);
    const last = Math.floor((8 * (shift + bytes.length) - 6) / 6);
    if (last >= first) forms.push(b64.slice(first, last + 1));
  }
  return forms;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Plain base64 without padding, the same in Node, the browser and the agent (no Buffer, no btoa). */
function toBase64(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    const chars = i + 2 < bytes.length ? 4 : i + 1 < bytes.length ? 3 : 2;
    for (let c = 0; c < chars; c++) out += B64[(n >> (18 - 6 * c)) & 63];
  }
  return out;
}

type Span = [start: number, end: number];

/**
 * Every place a pattern occurs, overlapping spans merged: two secrets that
 * overlap in the text ("abcd" and "cdef" in "abcdef") are hidden as one,
 * never leaving the tail of the second in clear as replacing one after the
 * other would. Spans that only touch stay apart (two stars groups), as in
 * GitHub's masker.
 */
function findSpans(text: string, patterns: readonly string[]): Span[] {
  const spans: Span[] = [];
  for (const p of patterns) {
    for (let i = text.indexOf(p); i >= 0; i = text.indexOf(p, i + 1)) spans.push([i, i + p.length]);
  }
  spans.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  const merged: Span[] = [];
  for (const s of spans) {
    const last = merged[merged.length - 1];
    if (last && s[0] < last[1]) last[1] = Math.max(last[1], s[1]);
    else merged.push([s[0], s[1]]);
  }
  return merged;
}

/**
 * `text[from, to)` with every span masked. A span that began before `from`
 * already has its stars in what was written before; its rest is dropped
 * without a second `***`.
 */
function renderRange(text: string, spans: readonly Span[], from: number, to: number): string {
  let out = '';
  let i = from;
  for (const [a, b] of spans) {
    if (b <= from || a >= to) continue;
    if (a > i) out += text.slice(i, a);
    if (a >= from) out += SECRET_MASK;
    i = Math.max(i, Math.min(b, to));
  }
  return out + text.slice(i, to);
}

/**
 * `text` with every occurrence of every mask replaced by `***` (see
 * {@link maskPatterns} for which strings count). For a whole text; output
 * that arrives in pieces goes through a {@link SecretMasker}.
 */
export function maskSecrets(text: string, masks: readonly string[]): string {
  const patterns = maskPatterns(masks);
  if (!patterns.length || !text) return text;
  return renderRange(text, findSpans(text, patterns), 0, text.length);
}

const isHighSurrogate = (c: number) => c >= 0xd800 && c <= 0xdbff;

/**
 * {@link maskSecrets} for a stream cut into chunks anywhere, also in the
 * middle of a secret: `push` returns what is safe to show now and holds back
 * the last (longest mask − 1) characters, which could still be the start of
 * a secret (one more so a surrogate pair is never cut in two); `flush` at
 * the end of the stream returns the rest. The concatenated output equals
 * `maskSecrets` of the concatenated input, however the input was cut.
 *
 * It also keeps that many characters of what it already returned, to
 * recognise a secret that began there and continues in the next chunk.
 */
export class SecretMasker {
  private readonly patterns: string[];
  private readonly keep: number;
  /** Already returned text kept for context, then text not returned yet. */
  private buf = '';
  /** Where the not-yet-returned part of `buf` begins. */
  private from = 0;

  constructor(masks: readonly string[]) {
    this.patterns = maskPatterns(masks);
    this.keep = this.patterns.length ? this.patterns[0].length - 1 : 0;
  }

  /** Characters held back right now (at most longest mask − 1, plus one for a split surrogate pair). */
  get pending(): number {
    return this.buf.length - this.from;
  }

  push(text: string): string {
    if (!this.patterns.length) return this.passThrough(text);
    const buf = this.buf + text;
    // Any secret not yet wholly in `buf` starts at or after `cut`, so what lies before it is final.
    let cut = Math.max(this.from, buf.length - this.keep);
    if (cut > this.from && isHighSurrogate(buf.charCodeAt(cut - 1))) cut--;
    const out = renderRange(buf, findSpans(buf, this.patterns), this.from, cut);
    const start = Math.max(0, cut - this.keep);
    this.buf = buf.slice(start);
    this.from = cut - start;
    return out;
  }

  flush(): string {
    if (!this.patterns.length) return this.passThrough('', true);
    const out = renderRange(this.buf, findSpans(this.buf, this.patterns), this.from, this.buf.length);
    this.buf = '';
    this.from = 0;
    return out;
  }

  /** Without masks nothing is held, except the first half of a surrogate pair cut by the chunking. */
  private passThrough(text: string, end = false): string {
    const all = this.buf + text;
    this.buf = '';
    this.from = 0;
    if (!end && all.length && isHighSurrogate(all.charCodeAt(all.length - 1))) {
      this.buf = all.slice(-1);
      return all.slice(0, -1);
    }
    return all;
  }
}
