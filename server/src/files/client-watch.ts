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
  res.once('close', mark);
  socket?.once('close', mark);
  return () => gone || !socket || socket.destroyed;
}
