/**
 * /live against the real app: a deleted user's open dashboard socket is
 * dropped at once and the same token cannot connect again (threat model T2).
 */
import { LIVE_NAMESPACE } from '@kapitan/shared';
import { io, type Socket } from 'socket.io-client';
import { UsersService } from '../users/users.service';
import { createTestApp, describeBothDatabases, signupUser, TestApp, waitFor } from '../testing/test-app';

function connect(url: string, token: string): Promise<Socket> {
  const socket = io(`${url}${LIVE_NAMESPACE}`, { auth: { token }, transports: ['websocket'], reconnection: false, forceNew: true });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err: Error & { data?: unknown }) => {
      socket.close();
      reject(Object.assign(err, { data: err.data }));
    });
  });
}

describeBothDatabases('live gateway', (database) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ database });
  });
  afterAll(() => t?.close());

  test("a deleted user's open socket is dropped at once, and the token no longer connects", async () => {
    const { user, token } = await signupUser(t.http);
    const socket = await connect(t.url, token);
    let reason: string | undefined;
    socket.on('disconnect', (r) => (reason = r));
    await t.app.get(UsersService).delete(user.id);
    await waitFor('the socket to be dropped', () => reason, 1000);
    expect(reason).toBe('io server disconnect');
    await expect(connect(t.url, token)).rejects.toMatchObject({ data: { code: 'unauthenticated' } });
  });
});
