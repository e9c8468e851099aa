// The socket helpers against a real socket.io server in this process, typed
// by the shared event maps (the Kapitan server is not needed for this).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server, type Socket as ServerSocket } from 'socket.io';
import {
  LIVE_NAMESPACE,
  type LiveClientToServerEventMap,
  type LiveServerToClientEventMap,
} from '@kapitan/shared';
import { collectSocketEvents, connectLive, emitWithAck, expectConnectRefused, waitForSocketEvent } from './sockets';
import { TimeoutError } from './wait';

const EXECUTION = '6f1c1f5e-8f1b-4d6e-9a53-1d2a0c9b7e01';
const OTHER = '0b7c7d7a-3c1f-4f0e-8f4b-2a9e8d6c5b4a';

let httpServer: http.Server;
let io: Server;
let url: string;
let serverSocket: ServerSocket<LiveClientToServerEventMap, LiveServerToClientEventMap> | undefined;

beforeAll(async () => {
  httpServer = http.createServer();
  io = new Server(httpServer);
  const live = io.of(LIVE_NAMESPACE);
  live.use((socket, next) => {
    if (socket.handshake.auth.token === 'valid') next();
    else next(Object.assign(new Error('unauthenticated'), { data: { code: 'unauthenticated' } }));
  });
  live.on('connection', (socket: ServerSocket<LiveClientToServerEventMap, LiveServerToClientEventMap>) => {
    serverSocket = socket;
    socket.on('subscribe:project', (payload, ack) => {
      if (payload.projectId === OTHER) return; // never acks
      void socket.join(`project:${payload.projectId}`);
      ack({ ok: true });
    });
  });
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => io.close(resolve));
});

const output = (seq: number) => ({ executionId: EXECUTION, chunks: [{ seq, stream: 'stdout' as const, data: `line ${seq}\n` }] });

describe('socket helpers', () => {
  it('connectLive connects with the token; a refused handshake reports the server error', async () => {
    const socket = await connectLive(url, 'valid');
    expect(socket.connected).toBe(true);
    socket.disconnect();
    const refused = await expectConnectRefused(url, LIVE_NAMESPACE, { token: 'stolen' });
    expect(refused.message).toMatch(/connection refused: unauthenticated/);
    expect(refused.data).toEqual({ code: 'unauthenticated' });
    await expect(connectLive(url, 'nope')).rejects.toThrow(/\/live: connection refused: unauthenticated \{"code":"unauthenticated"\}/);
  });

  it('waitForSocketEvent resolves on the first matching event, ignoring others', async () => {
    const socket = await connectLive(url, 'valid');
    const third = waitForSocketEvent({ socket, event: 'execution:output', match: (p) => p.chunks[0]?.seq === 2 });
    for (const seq of [0, 1, 2, 3]) serverSocket!.emit('execution:output', output(seq));
    await expect(third).resolves.toEqual(output(2));
    socket.disconnect();
  });

  it('waitForSocketEvent names what arrived instead at the deadline, and leaves no listener behind', async () => {
    const socket = await connectLive(url, 'valid');
    const wait = waitForSocketEvent({ socket, event: 'execution:output', match: (p) => p.chunks[0]?.seq === 99, timeoutMs: 300 });
    serverSocket!.emit('execution:output', output(5));
    const error = await wait.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TimeoutError);
    expect((error as Error).message).toMatch(/no matching "execution:output" within 300 ms; 1 "execution:output" event\(s\) did not match, the last: .*"seq":5/);
    expect(socket.listeners('execution:output')).toHaveLength(0);
    await expect(waitForSocketEvent({ socket, event: 'machine:updated', timeoutMs: 100 })).rejects.toThrow(/no "machine:updated" event arrived at all/);
    socket.disconnect();
  });

  it('waitForSocketEvent fails at once when the socket drops', async () => {
    const socket = await connectLive(url, 'valid');
    const wait = waitForSocketEvent({ socket, event: 'execution:output', timeoutMs: 10_000 });
    const started = Date.now();
    serverSocket!.disconnect(true);
    await expect(wait).rejects.toThrow(/disconnected \(io server disconnect\) while waiting for "execution:output"/);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('emitWithAck resolves with the ack, and rejects clearly when none comes', async () => {
    const socket = await connectLive(url, 'valid');
    await expect(emitWithAck(socket, 'subscribe:project', { projectId: EXECUTION })).resolves.toEqual({ ok: true });
    await expect(emitWithAck(socket, 'subscribe:project', { projectId: OTHER }, 200)).rejects.toThrow(
      'emitWithAck: no ack for "subscribe:project" within 200 ms',
    );
    socket.disconnect();
  });

  it('collectSocketEvents records everything until stopped', async () => {
    const socket = await connectLive(url, 'valid');
    const collected = collectSocketEvents(socket, 'execution:output');
    const last = waitForSocketEvent({ socket, event: 'execution:output', match: (p) => p.chunks[0]?.seq === 2 });
    for (const seq of [0, 1, 2]) serverSocket!.emit('execution:output', output(seq));
    await last;
    collected.stop();
    expect(collected.events.map((e) => e.chunks[0]?.seq)).toEqual([0, 1, 2]);
    socket.disconnect();
  });
});
