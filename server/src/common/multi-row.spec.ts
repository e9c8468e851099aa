import { BYTES_PER_STATEMENT, multiRow, VALUES_PER_STATEMENT } from './multi-row';

describe('multiRow', () => {
  test('one statement per VALUES_PER_STATEMENT bound values, rows kept whole and in order', () => {
    const perStatement = Math.floor(VALUES_PER_STATEMENT / 4);
    const rows = Array.from({ length: perStatement * 2 + 1 }, (_, i) => [i, 'a', null, 1.5]);
    const st = multiRow('INSERT INTO t (a, b, c, d) VALUES', rows, 'ON CONFLICT DO NOTHING');
    expect(st.map((s) => s.params.length / 4)).toEqual([perStatement, perStatement, 1]);
    expect(st[2]!.sql).toBe('INSERT INTO t (a, b, c, d) VALUES (?,?,?,?) ON CONFLICT DO NOTHING');
    expect(st.flatMap((s) => s.params).filter((_, i) => i % 4 === 0)).toEqual(rows.map((r) => r[0]));
  });

  test('heavy rows are cut by size before the value count; nothing at all is no statement', () => {
    const big = 'x'.repeat(Math.ceil(BYTES_PER_STATEMENT / 3 / 2.5));
    const st = multiRow('INSERT INTO t (a) VALUES', [[big], [big], [big]]);
    expect(st.map((s) => s.params.length)).toEqual([2, 1]);
    expect(multiRow('INSERT INTO t (a) VALUES', [])).toEqual([]);
  });
});
