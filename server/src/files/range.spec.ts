import { parseRange, RangeNotSatisfiable } from './range';

describe('parseRange', () => {
  it('no header is the whole file', () => expect(parseRange(undefined, 10)).toBeNull());

  it.each([
    ['bytes=0-0', 0, 0],
    ['bytes=0-9', 0, 9],
    ['bytes=3-', 3, 9],
    ['bytes=-3', 7, 9],
    ['bytes=-30', 0, 9],
    ['bytes=5-500', 5, 9],
    ['BYTES = 2 - 4', 2, 4],
  ])('%s of 10 bytes → %i..%i', (h, start, end) => expect(parseRange(h, 10)).toEqual({ start, end }));

  it.each(['bytes=10-', 'bytes=10-20', 'bytes=4-3', 'bytes=-0', 'bytes=-', 'bytes=0-1,3-4', 'bits=0-1', 'bytes=a-b', '', 'bytes=99999999999999999999-'])(
    '%j of 10 bytes → not satisfiable',
    (h) => expect(() => parseRange(h, 10)).toThrow(RangeNotSatisfiable),
  );

  it('any range of an empty file is not satisfiable', () => expect(() => parseRange('bytes=0-', 0)).toThrow(RangeNotSatisfiable));
});
