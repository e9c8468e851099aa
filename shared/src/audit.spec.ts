import { AUDIT_DETAILS_MAX_BYTES, AuditDetailsSchema, AuditQuerySchema } from './audit';

describe('audit contract', () => {
  it('details are flat and small: strings, numbers, booleans, null, lists of strings', () => {
    expect(AuditDetailsSchema.safeParse({ name: 'DB_PASS', n: 3, ok: true, none: null, ids: ['a', 'b'] }).success).toBe(true);
    expect(AuditDetailsSchema.safeParse({ nested: { value: 'x' } }).success).toBe(false);
    expect(AuditDetailsSchema.safeParse({ list: [{ value: 'x' }] }).success).toBe(false);
    expect(AuditDetailsSchema.safeParse({ long: 'x'.repeat(501) }).success).toBe(false);
    const big = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, 'x'.repeat(250)]));
    expect(JSON.stringify(big).length).toBeGreaterThan(AUDIT_DETAILS_MAX_BYTES);
    expect(AuditDetailsSchema.safeParse(big).success).toBe(false);
  });

  it('queries: known actions, ids, ISO times, a numeric cursor, a bounded limit; nothing else', () => {
    expect(AuditQuerySchema.parse({ action: 'secret.update', limit: '20', cursor: '42' })).toEqual({ action: 'secret.update', limit: 20, cursor: '42' });
    for (const bad of [{ action: 'secret.steal' }, { actor: 'me' }, { from: '2026-13-01' }, { cursor: '0' }, { cursor: '-1' }, { limit: '201' }, { projectId: '00000000-0000-4000-8000-000000000000' }]) {
      expect({ bad, ok: AuditQuerySchema.safeParse(bad).success }).toEqual({ bad, ok: false });
    }
  });
});
