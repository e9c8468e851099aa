/** Inclusive byte positions, as in `Content-Range: bytes start-end/size`. */
export interface ByteRange {
  start: number;
  end: number;
}

/** The Range header could not be served: answer 416 with `Content-Range: bytes *\/size`. */
export class RangeNotSatisfiable extends Error {}

/**
 * One byte range of a `size`-byte file from a Range header (RFC 9110 14.1.2):
 * `bytes=a-b`, `bytes=a-` or `bytes=-n`. No header → null (the whole file).
 * Several ranges, another unit, a malformed or unsatisfiable range → throws
 * RangeNotSatisfiable: one range is all a download resumer needs, and a
 * clear 416 beats silently sending the whole multi-GB file.
 */
export function parseRange(header: string | undefined, size: number): ByteRange | null {
  if (header === undefined) return null;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m || (m[1] === '' && m[2] === '')) throw new RangeNotSatisfiable(`unsupported Range: ${header.slice(0, 100)}`);
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) throw new RangeNotSatisfiable('an empty suffix range');
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) throw new RangeNotSatisfiable('the range ends before it starts');
  }
  if (!Number.isSafeInteger(start) || start >= size || end < start) throw new RangeNotSatisfiable(`the range is outside the ${size} bytes of the file`);
  return { start, end };
}
