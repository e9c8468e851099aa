import { isFinalStatus, type EnrolResponse, type Execution, type MachineFacts } from '@kapitan/shared';
import { ApiClient, signupUser, startAgent, waitFor, waitForMachineStatus, type StartAgentOptions, type TestAgent, type TestUser } from '../harness';

export const FACTS: MachineFacts = {
  hostname: 'e2e-host',
  os: 'Debian GNU/Linux 12',
  platform: 'linux',
  kernel: '6.1.0',
  arch: 'x64',
  cpus: 2,
  memoryBytes: 8 * 1024 ** 3,
  agentVersion: 'e2e',
  dockerAvailable: false,
};

export interface TestProject {
  owner: TestUser;
  projectId: string;
  api: ApiClient;
}

/** A fresh owner and project on `serverUrl`. */
export async function setupProject(serverUrl: string, name = 'e2e'): Promise<TestProject> {
  const owner = await signupUser(serverUrl, name);
  const project = await owner.api.createProject({ name });
  return { owner, projectId: project.id, api: owner.api };
}

/** Enrols a machine over REST (as the agent CLI does) and returns its credential, for raw-socket tests. */
export async function enrolRaw(serverUrl: string, p: TestProject, labels: Record<string, string> = {}): Promise<EnrolResponse> {
  const token = await p.api.createEnrolmentToken(p.projectId, { maxUses: 1 });
  const res = await p.api.request<EnrolResponse>('POST', '/api/agent/enrol', { token: null, body: { token: token.token, facts: FACTS, labels } });
  if (res.status !== 201) throw new Error(`enrol: HTTP ${res.status} ${res.text}`);
  return res.body;
}

/** The execution once it is final (succeeded, failed, cancelled, timed_out, lost or expired). */
export async function waitForFinal(p: TestProject, executionId: string, timeoutMs = 60_000): Promise<Execution> {
  return waitFor(
    async () => {
      const e = await p.api.getExecution(executionId);
      return isFinalStatus(e.status) ? e : null;
    },
    { timeoutMs, intervalMs: 100, message: `execution ${executionId} to finish` },
  );
}

/** A real agent process enrolled in `p` with a fresh token, once the server shows it online. */
export async function startOnlineAgent(serverUrl: string, p: TestProject, options: Omit<StartAgentOptions, 'serverUrl' | 'token'> = {}): Promise<TestAgent> {
  const agent = await startAgent({ serverUrl, token: (await p.api.createEnrolmentToken(p.projectId)).token, ...options });
  await waitForMachineStatus({ api: p.api, projectId: p.projectId, machineId: agent.machineId, status: 'online' });
  return agent;
}
