import type { Request, Response } from 'express';

/**
 * A probe: did the client hang up (or its connection break) before it was
 * answered? An upload whose client is gone is not kept: nobody would learn
 * its id, and a body cut short by a lying Content-Length ends this way too.
 */
export function watchClient(req: Request, res: Response): () => boolean {
  let gone = false;
  const mark = () => {
    if (!res.writableFinished) gone = true;
  };
  // Held now: Node may detach the socket from the request later (req.socket becomes null).
  const socket = req.socket;
  socket?.once('close', mark);
  // A kept-alive connection carries request after request (every chunk of an upload):
  // the socket's listener goes with this response, or each one would stay, holding its response, until the connection closes.
  res.once('close', () => {
    mark();
    socket?.off('close', mark);
  });
  return () => gone || !socket || socket.destroyed;
}
