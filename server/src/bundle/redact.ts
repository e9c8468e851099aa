const INSTALL_PATH = /^(\/api\/install\/)[^/?]+/;

/** pino-http's request serializer, minus the token of a one-line install URL (in `url` and the route params). */
export function redactInstallToken<T extends { url?: string; params?: Record<string, unknown> }>(req: T): T {
  if (typeof req.url === 'string' && INSTALL_PATH.test(req.url)) {
    req.url = req.url.replace(INSTALL_PATH, '$1[redacted]');
    if (req.params) req.params = {};
  }
  return req;
}
