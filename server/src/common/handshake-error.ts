import type { ErrorAckBody } from '@kapitan/shared';

/**
 * A refused socket.io handshake: the client's `connect_error` carries
 * `data` in the same `{ code, message }` shape as every error ack.
 */
export function handshakeError(code: ErrorAckBody['code'], message: string, extra?: Pick<ErrorAckBody, 'retryAfterMs'>): Error & { data: ErrorAckBody } {
  return Object.assign(new Error(code), { data: { code, message, ...extra } });
}
