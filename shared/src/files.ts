import { z } from 'zod';
import { IdSchema, IsoDateSchema } from './common';

/** What a stored file is for: a script to run, a file to deploy, or an image tarball as `docker save` writes it. */
export const FileKindSchema = z.enum(['script', 'file', 'image']);
export type FileKind = z.infer<typeof FileKindSchema>;
export const FILE_KINDS = FileKindSchema.options;

/** Bounds of the file store that do not depend on the server's configuration. */
export const FILE_LIMITS = {
  /** Characters of a display name after sanitising. */
  nameMax: 255,
  /** One chunk of a resumable upload: under the 100 MB many reverse proxies allow per request. */
  chunkMaxBytes: 16 * 1024 * 1024,
  /** A resumable upload not completed within this is dropped with its bytes. */
  uploadTtlSeconds: 24 * 3600,
  /** Unfinished resumable uploads one user may hold per project. */
  openUploadsPerUserMax: 20,
} as const;

export const Sha256Schema = z
  .string()
  .regex(/^[0-9a-fA-F]{64}$/, 'must be a sha256 digest: 64 hexadecimal digits')
  .transform((s) => s.toLowerCase());

// Control characters (C0, DEL, C1) have no place in a name a human reads: they
// can hide text in a terminal or a header, and NUL ends a C string early.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * A display name from what the client sent: only the last path segment is
 * kept (`../../etc/passwd` → `passwd`, `C:\x\y.sh` → `y.sh`), so a name never
 * reads as a path; control characters and over-long names are refused.
 * Storage never uses the name (blobs are addressed by sha256), so this is for
 * the humans and the Content-Disposition header, not for safety on disk.
 */
export function sanitizeFileName(raw: string): { ok: true; name: string } | { ok: false; message: string } {
  if (CONTROL.test(raw)) return { ok: false, message: 'must not contain control characters (NUL, newline, escape …)' };
  if (raw.length > 4 * FILE_LIMITS.nameMax) return { ok: false, message: `at most ${FILE_LIMITS.nameMax} characters` };
  const segments = raw.split(/[\\/]/);
  const name = segments[segments.length - 1].trim();
  if (!name || name === '.' || name === '..') return { ok: false, message: 'must name a file (not empty, not a directory like "." or "..")' };
  if (name.length > FILE_LIMITS.nameMax) return { ok: false, message: `at most ${FILE_LIMITS.nameMax} characters` };
  return { ok: true, name };
}

/** A display name: validated and sanitised as `sanitizeFileName` says. */
export const FileNameSchema = z.string().transform((raw, ctx) => {
  const r = sanitizeFileName(raw);
  if (!r.ok) {
    ctx.addIssue({ code: 'custom', message: r.message });
    return z.NEVER;
  }
  return r.name;
});

/** Query of a raw-body upload (`Content-Type: application/octet-stream`). */
export const RawUploadQuerySchema = z.strictObject({
  kind: FileKindSchema,
  name: FileNameSchema,
  /** When given, the upload is refused unless the bytes hash to it. */
  sha256: Sha256Schema.optional(),
});
export type RawUploadQuery = z.infer<typeof RawUploadQuerySchema>;

/** Who uploaded a file; null once that account is gone. */
export const FileUploaderSchema = z.object({ userId: IdSchema, email: z.string() }).nullable();

/** A stored file as the API shows it. */
export const StoredFileSchema = z.object({
  id: IdSchema,
  projectId: IdSchema,
  name: z.string(),
  kind: FileKindSchema,
  size: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  createdAt: IsoDateSchema,
  uploadedBy: FileUploaderSchema,
});
export type StoredFile = z.infer<typeof StoredFileSchema>;

/** Start a resumable upload: its size is declared up front, so the limit and the free space are checked first. */
export const CreateUploadRequestSchema = z.strictObject({
  kind: FileKindSchema,
  name: FileNameSchema,
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  sha256: Sha256Schema.optional(),
});
export type CreateUploadRequest = z.input<typeof CreateUploadRequestSchema>;

/** A resumable upload in progress: the next chunk goes at `offset`. */
export const UploadSchema = z.object({
  id: IdSchema,
  projectId: IdSchema,
  name: z.string(),
  kind: FileKindSchema,
  size: z.number().int().nonnegative(),
  offset: z.number().int().nonnegative(),
  chunkMaxBytes: z.number().int().positive(),
  expiresAt: IsoDateSchema,
});
export type Upload = z.infer<typeof UploadSchema>;

/** The query of `PUT /api/uploads/:id`: where this chunk starts. */
export const UploadChunkQuerySchema = z.strictObject({
  offset: z.coerce.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
});

/** Finish a resumable upload; a digest given here (or at creation) must match what the server computes. */
export const CompleteUploadRequestSchema = z.strictObject({ sha256: Sha256Schema.optional() });
export type CompleteUploadRequest = z.input<typeof CompleteUploadRequestSchema>;
