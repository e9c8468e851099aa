import { StreamableFile } from '@nestjs/common';
import { ErrorCode } from '@kapitan/shared';
import type { Request, Response } from 'express';
import { ApiException } from '../common/api-exception';
import type { FileContent } from './files.service';
import { ByteRange, parseRange, RangeNotSatisfiable } from './range';

/**
 * Answers a download: `ETag` (the sha256), `Accept-Ranges`, one Range → 206
 * with `Content-Range`, an unservable one → 416, `If-None-Match` on the whole
 * file → 304. `load` gets the Range parser so it can apply it once the size
 * is known. Shared by the members' and the agents' download routes.
 */
export async function sendFileContent(
  req: Request,
  res: Response,
  load: (range: (size: number) => ByteRange | null) => Promise<FileContent>,
): Promise<StreamableFile | undefined> {
  let size = 0;
  const header = req.headers.range;
  try {
    const { file, range: served, stream } = await load((s) => {
      size = s;
      return parseRange(header, s);
    });
    const etag = `"${file.sha256}"`;
    res.setHeader('ETag', etag);
    res.setHeader('Accept-Ranges', 'bytes');
    if (!served && req.headers['if-none-match'] === etag) {
      stream.destroy();
      res.status(304);
      return undefined;
    }
    const length = served ? served.end - served.start + 1 : file.size;
    if (served) {
      res.status(206);
      res.setHeader('Content-Range', `bytes ${served.start}-${served.end}/${file.size}`);
    }
    return new StreamableFile(stream, {
      type: 'application/octet-stream',
      length,
      disposition: `attachment; filename="${file.name.replace(/[^\x20-\x7e]|["\\]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(file.name)}`,
    });
  } catch (err) {
    if (!(err instanceof RangeNotSatisfiable)) throw err;
    throw new ApiException(416, ErrorCode.validation, err.message, [{ path: 'range', message: err.message }], { 'Content-Range': `bytes */${size}` });
  }
}
