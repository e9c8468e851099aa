import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import helmet from 'helmet';

/**
 * The hashes of the inline scripts of the built dashboard's index.html
 * (Angular's critical-CSS step adds one that switches the stylesheet on).
 * Allowing exactly these keeps `script-src` free of 'unsafe-inline' and
 * follows whatever the next build emits without a hand-kept list.
 */
export function inlineScriptHashes(webDir: string): string[] {
  let html: string;
  try {
    html = readFileSync(join(webDir, 'index.html'), 'utf8');
  } catch {
    return [];
  }
  return [...html.matchAll(/<script(?![^>]*\bsrc=)[^>]*>([\s\S]*?)<\/script>/gi)]
    .map((m) => m[1])
    .filter((body) => body.length > 0)
    .map((body) => `'sha256-${createHash('sha256').update(body, 'utf8').digest('base64')}'`);
}

/**
 * Headers on every response, API and dashboard alike: a content security
 * policy fit for the Angular app (its own scripts only; inline styles,
 * which Angular and Material inject at run time; sockets to this origin),
 * no framing by other sites, no MIME sniffing, no referrer leaving the
 * site. HSTS only on a request that came over HTTPS: sending it over plain
 * HTTP means nothing and would pin a host that has no certificate yet.
 */
export function securityHeaders(webDir: string): RequestHandler[] {
  const policy = helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        'default-src': ["'self'"],
        'script-src': ["'self'", ...inlineScriptHashes(webDir)],
        'style-src': ["'self'", "'unsafe-inline'"],
        'img-src': ["'self'", 'data:'],
        'font-src': ["'self'", 'data:'],
        'connect-src': ["'self'"],
        'object-src': ["'none'"],
        'base-uri': ["'self'"],
        'form-action': ["'self'"],
        'frame-ancestors': ["'none'"],
      },
    },
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    strictTransportSecurity: false,
    crossOriginEmbedderPolicy: false,
  });
  const hsts = (req: Request, res: Response, next: NextFunction): void => {
    if (req.secure) res.setHeader('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
    next();
  };
  return [policy, hsts];
}
