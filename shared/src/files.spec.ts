import { CreateUploadRequestSchema, FILE_LIMITS, RawUploadQuerySchema, sanitizeFileName } from './index';

describe('sanitizeFileName', () => {
  it.each([
    ['app.tar', 'app.tar'],
    ['../../etc/passwd', 'passwd'],
    ['/abs/path/x.sh', 'x.sh'],
    ['C:\\Users\\me\\x.bat', 'x.bat'],
    ['  padded  ', 'padded'],
    ['名前.txt', '名前.txt'],
    ['a'.repeat(FILE_LIMITS.nameMax), 'a'.repeat(FILE_LIMITS.nameMax)],
  ])('%j → %j', (raw, name) => {
    expect(sanitizeFileName(raw)).toEqual({ ok: true, name });
  });

  it.each([
    ['NUL', 'a\0b'],
    ['newline', 'a\nb'],
    ['carriage return', 'a\rb'],
    ['escape', '\x1b[2J'],
    ['DEL', '\x7f'],
    ['C1 control', 'a\u009bb'],
    ['empty', ''],
    ['blank', '   '],
    ['dot', '.'],
    ['dot-dot', '../..'],
    ['a trailing slash', 'dir/'],
    ['too long', 'a'.repeat(FILE_LIMITS.nameMax + 1)],
    ['10,000 characters', 'x'.repeat(10_000)],
  ])('refuses %s', (_, raw) => {
    expect(sanitizeFileName(raw).ok).toBe(false);
  });
});

describe('upload schemas', () => {
  it('the raw query takes kind, name and an optional sha256 (lower-cased), nothing else', () => {
    expect(RawUploadQuerySchema.parse({ kind: 'image', name: 'x/y.tar', sha256: 'AB'.repeat(32) })).toEqual({ kind: 'image', name: 'y.tar', sha256: 'ab'.repeat(32) });
    expect(RawUploadQuerySchema.safeParse({ kind: 'image', name: 'y', path: '/' }).success).toBe(false);
    expect(RawUploadQuerySchema.safeParse({ kind: 'exe', name: 'y' }).success).toBe(false);
  });

  it('a resumable upload declares a whole, non-negative size', () => {
    expect(CreateUploadRequestSchema.safeParse({ kind: 'file', name: 'x', size: 1.5 }).success).toBe(false);
    expect(CreateUploadRequestSchema.safeParse({ kind: 'file', name: 'x', size: -1 }).success).toBe(false);
    expect(CreateUploadRequestSchema.parse({ kind: 'file', name: 'x', size: 0 })).toEqual({ kind: 'file', name: 'x', size: 0 });
  });
});
