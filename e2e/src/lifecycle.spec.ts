// A real server process through the harness: it becomes healthy, serves the
// API, and keeps its data and sessions over a graceful restart and a crash,
// on embedded SQLite and on MariaDB.
import { expectError, requireMysql, signupUser, startServer, describeOrSkip, ApiClient } from './harness';

describe.each([
  { database: 'sqlite' as const, skip: null },
  { database: 'mysql' as const, skip: requireMysql() },
])('server lifecycle ($database)', ({ database, skip }) => {
  describeOrSkip(skip)('a real server process', () => {
    it('is healthy, and keeps users, projects and sessions over a restart and a crash', async () => {
      const server = await startServer({ database });
      const health = await new ApiClient(server.url).request('GET', '/api/health');
      expect(health).toMatchObject({ status: 200, body: { status: 'ok', database: 'up' } });

      const owner = await signupUser(server.url, 'owner');
      const project = await owner.api.createProject({ name: 'Survivor' });

      await server.restart();
      expect(await owner.api.listProjects()).toEqual([expect.objectContaining({ id: project.id, name: 'Survivor' })]);

      await server.kill();
      await server.restart();
      expect((await owner.api.me()).email).toBe(owner.email);
      expect((await new ApiClient(server.url).login(owner)).user.id).toBe(owner.user.id);

      expectError(await new ApiClient(server.url).request('GET', '/api/projects'), 401, 'unauthenticated');
      await server.dispose();
    });
  });
});
