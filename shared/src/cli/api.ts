/**
 * The operator CLI's view of the REST API: one base URL, one API token,
 * errors turned into the server's own message (code, what was wrong, the
 * request id to quote to an admin).
 */
import { ErrorBodySchema } from '../common';

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

/** A failure worth retrying: the network, or the server saying "not now". */
export function isTransient(err: unknown): boolean {
  if (err instanceof ApiFailure) return err.status === 0 || err.status === 429 || err.status >= 502;
  return true;
}

export interface ApiOptions {
  baseUrl: string;
  token: string;
  /** Per-request deadline; a chunk of 16 MiB on a slow link needs minutes. */
  timeoutMs?: number;
}

export class Api {
  private readonly base: string;

  constructor(private readonly options: ApiOptions) {
    this.base = options.baseUrl.replace(/\/+$/, '');
  }

  /** `method path` with an optional JSON or raw body; resolves with the parsed JSON answer (undefined for 204). */
  async request<T = unknown>(method: string, path: string, body?: unknown, raw?: Uint8Array): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.options.token}`, accept: 'application/json' };
    let payload: RequestInit['body'];
    if (raw) {
      headers['content-type'] = 'application/octet-stream';
      payload = raw;
    } else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await fetch(`${this.base}/api${path}`, {
        method,
        headers,
        body: payload,
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 10 * 60_000),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new ApiFailure(0, `cannot reach ${this.base}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) {
      let message = `${method} ${path} answered ${res.status}`;
      let code: string | undefined;
      try {
        const parsed = ErrorBodySchema.safeParse(JSON.parse(text));
        if (parsed.success) {
          code = parsed.data.code;
          const details = parsed.data.details?.map((d) => `${d.path ? `${d.path}: ` : ''}${d.message}`).join('; ');
          message = `${parsed.data.message}${details ? ` (${details})` : ''} [${res.status} ${parsed.data.code}${parsed.data.requestId ? `, request ${parsed.data.requestId}` : ''}]`;
        }
      } catch {
        // not JSON: keep the status line
      }
      throw new ApiFailure(res.status, message, code);
    }
    return (text ? JSON.parse(text) : undefined) as T;
  }
}
