import { io, type Socket } from 'socket.io-client';
import {
  AGENT_NAMESPACE,
  LIVE_NAMESPACE,
  type AgentToServerEventMap,
  type LiveClientToServerEventMap,
  type LiveServerToClientEventMap,
  type ServerToAgentEventMap,
} from '@kapitan/shared';
import { registerCleanup } from './cleanup';
import { TimeoutError } from './wait';

/** A dashboard socket on `/live`, typed by the shared maps. */
export type LiveSocket = Socket<LiveServerToClientEventMap, LiveClientToServerEventMap>;
/** An agent socket on `/agent`, typed by the shared maps (for tests that play a misbehaving agent). */
export type AgentSocket = Socket<ServerToAgentEventMap, AgentToServerEventMap>;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type EventsMap = { [event: string]: (...args: any[]) => void };
type FirstArg<F> = F extends (first: infer A, ...rest: never[]) => void ? A : never;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AckOf<F> = F extends (payload: any, ack: (answer: infer A) => void) => void ? A : never;
type Untyped = Socket<EventsMap, EventsMap>;

export interface ConnectOptions {
  /** Deadline for the handshake; default 10 s. */
  timeoutMs?: number;
  /** Extra handshake headers (e.g. a foreign Origin). */
  extraHeaders?: Record<string, string>;
  /** Default ['websocket']: no long-polling, no sticky sessions needed behind several nodes. */
  transports?: ('websocket' | 'polling')[];
  /** Default false: a test decides when to reconnect. */
  reconnection?: boolean;
}

/** Connects to `namespace` with `auth`, resolving once connected; rejects with the server's connect_error. */
export function connectSocket<S extends Socket>(
  serverUrl: string,
  namespace: string,
  auth: Record<string, unknown>,
  options: ConnectOptions = {},
): Promise<S> {
  const socket = io(new URL(namespace, serverUrl).toString(), {
    auth,
    forceNew: true,
    reconnection: options.reconnection ?? false,
    transports: options.transports ?? ['websocket'],
    extraHeaders: options.extraHeaders,
    timeout: options.timeoutMs ?? 10_000,
  });
  const unregister = registerCleanup(`socket ${namespace}`, () => {
    socket.disconnect();
  });
  return new Promise<S>((resolve, reject) => {
    const timer = setTimeout(() => fail(new TimeoutError(`${namespace}: no connection within ${options.timeoutMs ?? 10_000} ms`)), (options.timeoutMs ?? 10_000) + 500);
    const fail = (error: Error): void => {
      clearTimeout(timer);
      socket.disconnect();
      unregister();
      reject(error);
    };
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('connect_error');
      resolve(socket as unknown as S);
    });
    socket.once('connect_error', (error: Error & { data?: unknown }) => {
      const data = error.data === undefined ? '' : ` ${JSON.stringify(error.data)}`;
      fail(Object.assign(new Error(`${namespace}: connection refused: ${error.message}${data}`), { cause: error, data: error.data }));
    });
  });
}

/** A dashboard socket authenticated by the user's JWT. */
export function connectLive(serverUrl: string, token: string, options?: ConnectOptions): Promise<LiveSocket> {
  return connectSocket<LiveSocket>(serverUrl, LIVE_NAMESPACE, { token }, options);
}

/** An agent socket authenticated by a machine credential. */
export function connectAgentSocket(serverUrl: string, credential: string, options?: ConnectOptions): Promise<AgentSocket> {
  return connectSocket<AgentSocket>(serverUrl, AGENT_NAMESPACE, { credential }, options);
}

/**
 * Asserts a handshake is refused: resolves with the connect_error (`message`,
 * `data`), rejects if the socket connects.
 */
export async function expectConnectRefused(
  serverUrl: string,
  namespace: string,
  auth: Record<string, unknown>,
  options?: ConnectOptions,
): Promise<Error & { data?: unknown }> {
  let socket: Socket;
  try {
    socket = await connectSocket(serverUrl, namespace, auth, options);
  } catch (error) {
    if (error instanceof TimeoutError) throw error;
    return error as Error & { data?: unknown };
  }
  socket.disconnect();
  throw new Error(`${namespace}: the handshake with auth ${JSON.stringify(Object.keys(auth))} was accepted; expected it refused`);
}

export interface WaitForSocketEventOptions<L extends EventsMap, E extends keyof L & string> {
  socket: Socket<L, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  event: E;
  /** Resolve on the first event for which this is true; default: any. */
  match?: (payload: FirstArg<L[E]>) => boolean;
  /** Default 10 s. */
  timeoutMs?: number;
  /** Reject as soon as the socket disconnects (default true). */
  failOnDisconnect?: boolean;
}

/**
 * Resolves with the payload of the first `event` that `match`es, arriving
 * after the call: call it BEFORE the action that causes the event, then await
 * it. Rejects at the deadline naming the event and what did arrive instead.
 */
export function waitForSocketEvent<L extends EventsMap, E extends keyof L & string>(
  options: WaitForSocketEventOptions<L, E>,
): Promise<FirstArg<L[E]>> {
  const { event, match, timeoutMs = 10_000, failOnDisconnect = true } = options;
  const socket = options.socket as unknown as Untyped;
  const unmatched: unknown[] = [];
  let unmatchedCount = 0;
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      socket.off(event as string, onEvent);
      socket.off('disconnect', onDisconnect);
    };
    const onEvent = (payload: FirstArg<L[E]>): void => {
      let ok: boolean;
      try {
        ok = match ? match(payload) : true;
      } catch (error) {
        done();
        reject(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      if (ok) {
        done();
        resolve(payload);
      } else {
        unmatchedCount++;
        unmatched.push(payload);
        if (unmatched.length > 3) unmatched.shift();
      }
    };
    const onDisconnect = (reason: string): void => {
      done();
      reject(new Error(`waitForSocketEvent: the socket disconnected (${reason}) while waiting for "${event}"`));
    };
    const timer = setTimeout(() => {
      done();
      const seen =
        unmatchedCount === 0
          ? `no "${event}" event arrived at all`
          : `${unmatchedCount} "${event}" event(s) did not match, the last: ${unmatched.map((p) => JSON.stringify(p)).join(' | ').slice(0, 1500)}`;
      reject(new TimeoutError(`waitForSocketEvent: no matching "${event}" within ${timeoutMs} ms; ${seen}`));
    }, timeoutMs);
    socket.on(event as string, onEvent);
    if (failOnDisconnect) socket.on('disconnect', onDisconnect);
  });
}

/** Records every `event` from now on, e.g. to assert that nothing of a foreign room ever arrives. */
export function collectSocketEvents<L extends EventsMap, E extends keyof L & string>(
  socket: Socket<L, any>, // eslint-disable-line @typescript-eslint/no-explicit-any
  event: E,
): { events: FirstArg<L[E]>[]; stop(): void } {
  const events: FirstArg<L[E]>[] = [];
  const untyped = socket as unknown as Untyped;
  const listener = (payload: FirstArg<L[E]>): void => {
    events.push(payload);
  };
  untyped.on(event as string, listener);
  return { events, stop: () => void untyped.off(event as string, listener) };
}

/** Emits `event` with `payload` and resolves with the ack; rejects with a clear message at the deadline. */
export async function emitWithAck<M extends EventsMap, E extends keyof M & string>(
  socket: Socket<any, M>, // eslint-disable-line @typescript-eslint/no-explicit-any
  event: E,
  payload: FirstArg<M[E]>,
  timeoutMs = 5_000,
): Promise<AckOf<M[E]>> {
  try {
    return (await (socket as unknown as Untyped).timeout(timeoutMs).emitWithAck(event, payload)) as AckOf<M[E]>;
  } catch (error) {
    if (error instanceof Error && /timed out/i.test(error.message)) {
      throw new TimeoutError(`emitWithAck: no ack for "${event}" within ${timeoutMs} ms`);
    }
    throw error;
  }
}
