import {
  AgentHelloAckSchema,
  BundleQuerySchema,
  CreateInstallLinkRequestSchema,
  EnrolmentTokenPurposeSchema,
  agentToServerSchemas,
  ExecutionChunksAckSchema,
  ExecutionOutputAckSchema,
  IdSchema,
  CreateEnrolmentTokenRequestSchema,
  CreateExecutionRequestSchema,
  ErrorCode,
  ExecutionOutputSchema,
  issueDetails,
  LIMITS,
  liveClientToServerSchemas,
  parsePayload,
  serverToAgentSchemas,
  liveServerToClientSchemas,
  SignupRequestSchema,
  TargetsSchema,
} from './index';

const id = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';

describe('the contracts', () => {
  it('declare a schema for every event of every map, so nothing reaches a handler unparsed', () => {
    expect(Object.keys(agentToServerSchemas).sort()).toEqual([
      'agent:heartbeat',
      'agent:hello',
      'container-operation:finished',
      'container-operation:started',
      'container:logs',
      'containers:changed',
      'containers:snapshot',
      'delivery:finished',
      'delivery:progress',
      'docker:status',
      'execution:finished',
      'execution:output',
      'execution:started',
      'metrics:sample',
    ]);
    expect(Object.keys(serverToAgentSchemas).sort()).toEqual([
      'agent:revoked',
      'container-operation:dispatch',
      'container:logs:follow',
      'container:logs:stop',
      'delivery:dispatch',
      'execution:cancel',
      'execution:dispatch',
      'metrics:watch',
      'server:draining',
    ]);
    expect(Object.keys(liveClientToServerSchemas).sort()).toEqual([
      'execution:history',
      'subscribe:container-logs',
      'subscribe:execution',
      'subscribe:machine-metrics',
      'subscribe:project',
      'unsubscribe:container-logs',
      'unsubscribe:execution',
      'unsubscribe:machine-metrics',
      'unsubscribe:project',
    ]);
  });

  it('refuse unknown fields, each named by its own path', () => {
    const r = SignupRequestSchema.safeParse({ email: 'a@b.co', password: 'long enough pw', isAdmin: true, role: 'x' });
    expect(r.success).toBe(false);
    expect(issueDetails(r.error!).map((d) => d.path).sort()).toEqual(['isAdmin', 'role']);
  });

  it('lower-case emails', () => {
    expect(SignupRequestSchema.parse({ email: 'Ada@Example.COM', password: 'long enough pw' }).email).toBe('ada@example.com');
  });

  it('measure the script limit in UTF-8 bytes, not characters', () => {
    const base = { targets: { all: true } };
    const euro = '€'; // 3 bytes
    const fits = euro.repeat(Math.floor(LIMITS.scriptMaxBytes / 3));
    expect(CreateExecutionRequestSchema.safeParse({ ...base, script: fits }).success).toBe(true);
    expect(CreateExecutionRequestSchema.safeParse({ ...base, script: fits + euro }).success).toBe(false);
  });

  it('take secrets by name, each once, never one also set in env (named under secrets)', () => {
    const base = { script: 'true', targets: { all: true } };
    expect(CreateExecutionRequestSchema.safeParse({ ...base, secrets: ['DB_PASSWORD'], env: { OTHER: 'x' } }).success).toBe(true);
    const clash = CreateExecutionRequestSchema.safeParse({ ...base, secrets: ['DB_PASSWORD'], env: { DB_PASSWORD: 'x' } });
    expect(issueDetails(clash.error!).map((d) => d.path)).toEqual(['secrets']);
    expect(CreateExecutionRequestSchema.safeParse({ ...base, secrets: ['A_B', 'A_B'] }).success).toBe(false);
    expect(CreateExecutionRequestSchema.safeParse({ ...base, secrets: ['lower'] }).success).toBe(false);
  });

  it('carry secret values in a dispatch only as additive fields', () => {
    const dispatch = serverToAgentSchemas['execution:dispatch'];
    const d = { executionId: id, script: 'true', args: [], env: {}, cwd: null, timeoutSeconds: 5 };
    expect(dispatch.safeParse(d).success).toBe(true);
    expect(dispatch.safeParse({ ...d, secretEnv: { DB_PASSWORD: 'v4lue' }, masks: ['v4lue'] }).success).toBe(true);
    expect(dispatch.safeParse({ ...d, secretEnv: { 'not a name': 'v' } }).success).toBe(false);
    expect(dispatch.safeParse({ ...d, secretEnv: { DB_PASSWORD: 'nul\0' } }).success).toBe(false);
  });

  it('need at least one target selector', () => {
    expect(TargetsSchema.safeParse({}).success).toBe(false);
    expect(TargetsSchema.safeParse({ all: false }).success).toBe(false);
    expect(TargetsSchema.safeParse({ labels: { env: 'prod' } }).success).toBe(true);
    expect(TargetsSchema.safeParse({ machineIds: [id] }).success).toBe(true);
  });

  it('bound output messages in chunk count and chunk size', () => {
    const chunk = (seq: number, data = 'x') => ({ seq, stream: 'stdout' as const, data });
    expect(ExecutionOutputSchema.safeParse({ executionId: id, chunks: [chunk(0)] }).success).toBe(true);
    expect(ExecutionOutputSchema.safeParse({ executionId: id, chunks: [chunk(0, 'x'.repeat(LIMITS.chunkDataMax + 1))] }).success).toBe(false);
    const many = Array.from({ length: LIMITS.chunksPerMessageMax + 1 }, (_, i) => chunk(i));
    expect(ExecutionOutputSchema.safeParse({ executionId: id, chunks: many }).success).toBe(false);
    expect(ExecutionOutputSchema.safeParse({ executionId: id, chunks: [{ ...chunk(0), seq: 1.5 }] }).success).toBe(false);
  });

  it('carry a revocation reason, bounded, and nothing else', () => {
    expect(parsePayload(serverToAgentSchemas['agent:revoked'], { reason: 'project deleted' })).toEqual({ ok: true, value: { reason: 'project deleted' } });
    expect(parsePayload(serverToAgentSchemas['agent:revoked'], { reason: 'x'.repeat(501) }).ok).toBe(false);
    expect(parsePayload(serverToAgentSchemas['agent:revoked'], { reason: 'x', machineId: id }).ok).toBe(false);
    expect(ErrorCode.machineRevoked).toBe('machine_revoked');
  });

  it('carry a draining reason, bounded, to agents and dashboards alike, and nothing else', () => {
    expect(parsePayload(serverToAgentSchemas['server:draining'], { reason: 'node stopping' })).toEqual({ ok: true, value: { reason: 'node stopping' } });
    expect(parsePayload(serverToAgentSchemas['server:draining'], { reason: 'x'.repeat(501) }).ok).toBe(false);
    expect(parsePayload(serverToAgentSchemas['server:draining'], { reason: 'x', retryInMs: 0 }).ok).toBe(false);
    expect(liveServerToClientSchemas['server:draining']).toBe(serverToAgentSchemas['server:draining']);
  });

  it('let a token allow agent labels only as a boolean', () => {
    expect(CreateEnrolmentTokenRequestSchema.parse({ allowAgentLabels: true })).toEqual({ allowAgentLabels: true });
    expect(CreateEnrolmentTokenRequestSchema.parse({})).toEqual({});
    expect(CreateEnrolmentTokenRequestSchema.safeParse({ allowAgentLabels: 'yes' }).success).toBe(false);
  });

  it('take a bundle query as the strings a URL carries, within limits, and nothing else', () => {
    expect(BundleQuerySchema.parse({ maxUses: '3', ttlHours: '24' })).toEqual({ maxUses: 3, ttlHours: 24 });
    expect(BundleQuerySchema.parse({})).toEqual({});
    for (const bad of [{ maxUses: '0' }, { maxUses: '1.5' }, { ttlHours: String(LIMITS.bundleTokenMaxTtlHours + 1) }, { ttlHours: 'soon' }, { other: '1' }]) {
      expect(BundleQuerySchema.safeParse(bad).success).toBe(false);
    }
    expect(CreateInstallLinkRequestSchema.parse({ ttlMinutes: 5 })).toEqual({ ttlMinutes: 5 });
    expect(CreateInstallLinkRequestSchema.safeParse({ ttlMinutes: 4 }).success).toBe(false);
    expect(CreateInstallLinkRequestSchema.safeParse({ ttlMinutes: '30' }).success).toBe(false);
    expect(EnrolmentTokenPurposeSchema.options).toEqual(['manual', 'bundle', 'install']);
  });

  it('parsePayload answers an error ack body naming the fields at fault', () => {
    const r = parsePayload(ExecutionOutputSchema, { executionId: 'nope', chunks: 'x' });
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.code).toBe('validation_failed');
      expect(r.error.details?.map((d) => d.path).sort()).toEqual(['chunks', 'executionId']);
    }
    for (const bad of [null, 'str', 42, [], undefined]) expect(parsePayload(ExecutionOutputSchema, bad).ok).toBe(false);
  });
});

describe('ids and acks', () => {
  it('normalise an id to lower case inside the schema, so any spelling names the stored row and its room', () => {
    const upper = id.toUpperCase();
    expect(ExecutionOutputSchema.parse({ executionId: upper, chunks: [{ seq: 0, stream: 'stdout', data: 'x' }] }).executionId).toBe(id);
    expect(agentToServerSchemas['agent:hello'].parse({ facts: FACTS_FOR_IDS, activeExecutionIds: [upper] }).activeExecutionIds).toEqual([id]);
    expect(IdSchema.safeParse('not-an-id').success).toBe(false);
  });

  it('give every ack that crosses the wire a schema: success with its fields, or an error', () => {
    const summary = {
      id, runId: id, projectId: id, machineId: id, status: 'running', exitCode: null, signal: null, reason: null,
      createdAt: '2026-01-01T00:00:00.000Z', dispatchedAt: null, startedAt: null, finishedAt: null, durationMs: null,
    };
    expect(ExecutionChunksAckSchema.safeParse({ ok: true, execution: summary, chunks: [], nextSeq: 0 }).success).toBe(true);
    expect(ExecutionChunksAckSchema.safeParse({ ok: true, chunks: [], nextSeq: 0 }).success).toBe(false);
    expect(ExecutionChunksAckSchema.safeParse({ ok: false, error: { code: 'not_found', message: 'x' } }).success).toBe(true);
    expect(AgentHelloAckSchema.parse({ ok: true, machineId: id, serverTime: '2026-01-01T00:00:00.000Z', refused: [{ executionId: id, code: 'not_found' }] })).toMatchObject({ refused: [{ executionId: id }] });
    expect(AgentHelloAckSchema.safeParse({ ok: true, machineId: id, serverTime: '2026-01-01T00:00:00.000Z' }).success).toBe(true);
    expect(ExecutionOutputAckSchema.safeParse({ ok: true, stored: -1 }).success).toBe(false);
  });
});

const FACTS_FOR_IDS = {
  hostname: 'h', os: 'Debian', platform: 'linux', kernel: '6.1', arch: 'x64', cpus: 1, memoryBytes: 1, agentVersion: 't', dockerAvailable: false,
};
