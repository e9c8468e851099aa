/**
 * Files the server sends to real agents: a stored script run by its fileId.
 */
import { startServer, type TestAgent, type TestServer } from '../harness';
import { setupProject, startOnlineAgent, waitForFinal, type TestProject } from './fixtures';

describe('deliveries to a real agent (SQLite)', () => {
  let server: TestServer;
  let p: TestProject;
  let agent: TestAgent;

  beforeAll(async () => {
    server = await startServer({ database: 'sqlite' });
    p = await setupProject(server.url, 'deliveries');
    agent = await startOnlineAgent(server.url, p);
  });
  afterAll(async () => {
    await agent?.dispose();
    await server?.dispose();
  });

  test('an uploaded script runs by fileId exactly like an inline one; the run keeps its copy after the file is deleted', async () => {
    const file = await p.api.uploadFile(p.projectId, 'script', 'hello.sh', Buffer.from('#!/bin/sh\necho "from a file: $1"\n'));
    const { executions } = await p.api.createExecution(p.projectId, { fileId: file.id, args: ['x y'], targets: { machineIds: [agent.machineId] } });
    const e = await waitForFinal(p, executions[0].id);
    expect(e).toMatchObject({ status: 'succeeded', exitCode: 0, fileId: file.id, fileSha256: file.sha256 });
    expect(await p.api.getExecutionLogText(e.id)).toBe('from a file: x y\n');
    // The run made from it does not hold the file: it can go, and the run still shows what it ran.
    expect((await p.api.deleteFile(file.id)).status).toBe(204);
    expect((await p.api.getExecution(e.id)).script).toBe('#!/bin/sh\necho "from a file: $1"\n');
  });
});
