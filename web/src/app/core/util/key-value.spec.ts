import { formatKeyValueLines, labelsMatch, parseKeyValueLines, parseLines } from './key-value';

describe('key=value lines', () => {
  it('parses pairs, keeps = and spaces in values, skips blanks and comments', () => {
    expect(parseKeyValueLines('A=1\n\n# note\n B = x=y \n')).toEqual({ values: { A: '1', B: ' x=y ' }, errors: [] });
  });

  it('reports malformed and repeated lines by number', () => {
    expect(parseKeyValueLines('A=1\nnope\n=x\nA=2').errors).toEqual([
      'line 2: expected KEY=value',
      'line 3: expected KEY=value',
      'line 4: "A" is given twice',
    ]);
  });

  it('round-trips', () => {
    const text = formatKeyValueLines({ env: 'prod', site: 'paris' });
    expect(parseKeyValueLines(text).values).toEqual({ env: 'prod', site: 'paris' });
  });

  it('splits arguments one per line', () => {
    expect(parseLines('a\n  b c \n\n')).toEqual(['a', '  b c ']);
  });

  it('matches label selectors', () => {
    expect(labelsMatch({ env: 'prod', role: 'web' }, { env: 'prod' })).toBe(true);
    expect(labelsMatch({ env: 'prod' }, { env: 'prod', role: 'web' })).toBe(false);
    expect(labelsMatch({}, {})).toBe(true);
  });
});
