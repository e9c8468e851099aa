import { randomBytes } from 'node:crypto';
import {
  AddMemberResponseSchema,
  type AddMemberResponse,
  AuthResponseSchema,
  CreateExecutionResponseSchema,
  EnrolmentTokenSchema,
  ErrorBodySchema,
  ExecutionLogSchema,
  ExecutionSchema,
  MachineSchema,
  MemberSchema,
  ProjectSchema,
  StoredFileSchema,
  OccurrenceSchema,
  ScheduleSchema,
  UserSchema,
  type AuthResponse,
  type CreateScheduleRequest,
  type Occurrence,
  type Schedule,
  type CreateEnrolmentTokenRequest,
  type CreateExecutionRequest,
  type CreateExecutionResponse,
  type CreateProjectRequest,
  type EnrolmentToken,
  type ErrorBody,
  type Execution,
  type ExecutionLog,
  type FileKind,
  type StoredFile,
  type Machine,
  type Member,
  type Project,
  type ProjectRole,
  type User,
} from '@kapitan/shared';
import type { z } from 'zod';

export interface ApiResponse<T = unknown> {
  status: number;
  /** Lower-case names. */
  headers: Record<string, string>;
  /** Parsed JSON when the response is JSON, else the text ('' when empty). */
  body: T;
  text: string;
}

export interface RequestOptions {
  /** Bearer token; default the client's own. `null` sends none. */
  token?: string | null;
  /** Sent as JSON. */
  body?: unknown;
  /** Sent as is (malformed JSON, multipart FormData, a stream…); set content-type in `headers`. */
  rawBody?: string | Uint8Array | FormData | ReadableStream<Uint8Array>;
  headers?: Record<string, string>;
  query?: Record<string, string | number | boolean | undefined>;
  /** Default 30 s. */
  timeoutMs?: number;
}

/** A convenience call got a status it did not expect. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly method: string,
    readonly path: string,
    readonly response: ApiResponse,
  ) {
    super(`${method} ${path} → ${response.status}: ${response.text.slice(0, 1000)}`);
  }
}

/**
 * A small typed REST client for one server. `request` is the raw call (any
 * method, path, body, headers); the named methods expect the documented
 * status, check the body against the shared schema, and throw ApiError
 * otherwise.
 */
export class ApiClient {
  constructor(
    readonly baseUrl: string,
    readonly token?: string,
  ) {}

  /** The same server, another identity. */
  withToken(token: string | undefined): ApiClient {
    return new ApiClient(this.baseUrl, token);
  }

  async request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<ApiResponse<T>> {
    const url = new URL(path, this.baseUrl);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const headers: Record<string, string> = { accept: 'application/json' };
    for (const [name, value] of Object.entries(options.headers ?? {})) headers[name.toLowerCase()] = value;
    const token = options.token === undefined ? this.token : options.token;
    if (token) headers.authorization ??= `Bearer ${token}`;
    let body: RequestInit['body'];
    if (options.rawBody !== undefined) {
      body = options.rawBody;
    } else if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    const init: RequestInit & { duplex?: 'half' } = {
      method,
      headers,
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
    };
    if (body instanceof ReadableStream) init.duplex = 'half';
    const res = await fetch(url, init);
    const text = await res.text();
    const responseHeaders: Record<string, string> = {};
    res.headers.forEach((value, key) => (responseHeaders[key] = value));
    let parsed: unknown = text;
    if (/\bjson\b/.test(responseHeaders['content-type'] ?? '') && text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    return { status: res.status, headers: responseHeaders, body: parsed as T, text };
  }

  /** `request`, then: the status must be `status` and the body must parse with `schema`. */
  async expect<S extends z.ZodType>(
    method: string,
    path: string,
    status: number,
    schema: S | null,
    options?: RequestOptions,
  ): Promise<z.output<S>> {
    const res = await this.request(method, path, options);
    if (res.status !== status) throw new ApiError(method, path, res);
    if (schema === null) return res.body as z.output<S>;
    const result = schema.safeParse(res.body);
    if (!result.success) {
      throw new Error(`${method} ${path}: the ${status} body does not match its schema: ${result.error.message}\n${res.text.slice(0, 1000)}`);
    }
    return res.body as z.output<S>;
  }

  // ------------------------------------------------------------ auth
  /** Sends only email, password and name (the server refuses unknown fields). */
  signup({ email, password, name }: { email: string; password: string; name?: string }): Promise<AuthResponse> {
    return this.expect('POST', '/api/auth/signup', 201, AuthResponseSchema, { body: { email, password, name }, token: null });
  }
  /** Sends only email and password, so a TestUser or credentials object can be passed as is. */
  login({ email, password }: { email: string; password: string }): Promise<AuthResponse> {
    return this.expect('POST', '/api/auth/login', 200, AuthResponseSchema, { body: { email, password }, token: null });
  }
  async logout(): Promise<void> {
    await this.expect('POST', '/api/auth/logout', 204, null);
  }
  me(): Promise<User> {
    return this.expect('GET', '/api/me', 200, UserSchema);
  }

  // ------------------------------------------------------------ projects
  createProject(body: CreateProjectRequest): Promise<Project> {
    return this.expect('POST', '/api/projects', 201, ProjectSchema, { body });
  }
  listProjects(): Promise<Project[]> {
    return this.expect('GET', '/api/projects', 200, ProjectSchema.array());
  }
  getProject(projectId: string): Promise<Project> {
    return this.expect('GET', `/api/projects/${projectId}`, 200, ProjectSchema);
  }
  /** The answer is the same whether or not the e-mail has an account (no enumeration). */
  addMember(projectId: string, body: { email: string; role: ProjectRole }): Promise<AddMemberResponse> {
    return this.expect('POST', `/api/projects/${projectId}/members`, 201, AddMemberResponseSchema, { body });
  }
  listMembers(projectId: string): Promise<Member[]> {
    return this.expect('GET', `/api/projects/${projectId}/members`, 200, MemberSchema.array());
  }

  // ------------------------------------------------------------ machines
  /** The response carries the plain token (shown once). */
  async createEnrolmentToken(projectId: string, body: CreateEnrolmentTokenRequest = {}): Promise<EnrolmentToken & { token: string }> {
    const created = await this.expect('POST', `/api/projects/${projectId}/enrolment-tokens`, 201, EnrolmentTokenSchema, { body });
    if (typeof created.token !== 'string') throw new Error('the created enrolment token carries no plain `token`');
    return created as EnrolmentToken & { token: string };
  }
  listMachines(projectId: string): Promise<Machine[]> {
    return this.expect('GET', `/api/projects/${projectId}/machines`, 200, MachineSchema.array());
  }
  getMachine(projectId: string, machineId: string): Promise<Machine> {
    return this.expect('GET', `/api/projects/${projectId}/machines/${machineId}`, 200, MachineSchema);
  }

  // ------------------------------------------------------------ files
  /** A raw-body upload (one request). */
  uploadFile(projectId: string, kind: FileKind, name: string, bytes: Buffer | Uint8Array): Promise<StoredFile> {
    return this.expect('POST', `/api/projects/${projectId}/files`, 201, StoredFileSchema, {
      query: { kind, name },
      headers: { 'content-type': 'application/octet-stream' },
      rawBody: new Uint8Array(bytes),
    });
  }
  async deleteFile(fileId: string): Promise<ApiResponse> {
    return this.request('DELETE', `/api/files/${fileId}`);
  }

  // ------------------------------------------------------------ executions
  createExecution(projectId: string, body: CreateExecutionRequest): Promise<CreateExecutionResponse> {
    return this.expect('POST', `/api/projects/${projectId}/executions`, 201, CreateExecutionResponseSchema, { body });
  }
  getExecution(executionId: string): Promise<Execution> {
    return this.expect('GET', `/api/executions/${executionId}`, 200, ExecutionSchema);
  }
  getExecutionLog(executionId: string, query: { fromSeq?: number; limit?: number } = {}): Promise<ExecutionLog> {
    return this.expect('GET', `/api/executions/${executionId}/log`, 200, ExecutionLogSchema, { query });
  }
  /** The log as text (Accept: text/plain). */
  async getExecutionLogText(executionId: string): Promise<string> {
    const path = `/api/executions/${executionId}/log`;
    const res = await this.request('GET', path, { headers: { accept: 'text/plain' } });
    if (res.status !== 200) throw new ApiError('GET', path, res);
    return res.text;
  }
  // ------------------------------------------------------------ schedules
  createSchedule(projectId: string, body: CreateScheduleRequest): Promise<Schedule> {
    return this.expect('POST', `/api/projects/${projectId}/schedules`, 201, ScheduleSchema, { body }) as Promise<Schedule>;
  }
  getSchedule(scheduleId: string): Promise<Schedule> {
    return this.expect('GET', `/api/schedules/${scheduleId}`, 200, ScheduleSchema) as Promise<Schedule>;
  }
  listOccurrences(scheduleId: string): Promise<Occurrence[]> {
    return this.expect('GET', `/api/schedules/${scheduleId}/occurrences`, 200, OccurrenceSchema.array());
  }
  async pauseSchedule(scheduleId: string): Promise<void> {
    await this.expect('POST', `/api/schedules/${scheduleId}/pause`, 200, ScheduleSchema);
  }

  async cancelExecution(executionId: string): Promise<void> {
    const path = `/api/executions/${executionId}/cancel`;
    const res = await this.request('POST', path);
    if (res.status < 200 || res.status > 299) throw new ApiError('POST', path, res);
  }
}

/** A unique email, a valid password and a name. */
export function newCredentials(prefix = 'user'): { email: string; password: string; name: string } {
  const id = randomBytes(5).toString('hex');
  return { email: `${prefix}-${id}@e2e.kapitan.test`, password: `pw-${randomBytes(9).toString('base64url')}`, name: `${prefix} ${id}` };
}

export interface TestUser {
  user: User;
  accessToken: string;
  email: string;
  password: string;
  /** A client that sends this user's token. */
  api: ApiClient;
}

/** Signs up a fresh user through the API. */
export async function signupUser(baseUrl: string, prefix = 'user'): Promise<TestUser> {
  const credentials = newCredentials(prefix);
  const auth = await new ApiClient(baseUrl).signup(credentials);
  return { ...auth, email: credentials.email, password: credentials.password, api: new ApiClient(baseUrl, auth.accessToken) };
}

const ERROR_KEYS = new Set(['statusCode', 'code', 'message', 'details', 'requestId']);

/**
 * Asserts the one error shape `{statusCode, code, message, details?,
 * requestId?}` with `status` (and `code`, and a `details` entry for `field`,
 * when given). Returns the body for further checks.
 */
export function expectError(
  res: ApiResponse,
  status: number,
  code?: string,
  options: { field?: string; message?: string | RegExp } = {},
): ErrorBody {
  if (res.status !== status) {
    throw new Error(`expected HTTP ${status}${code ? ` ${code}` : ''}, got ${res.status}: ${res.text.slice(0, 1000)}`);
  }
  const parsed = ErrorBodySchema.safeParse(res.body);
  if (!parsed.success) {
    throw new Error(`HTTP ${status} body is not the error shape {statusCode, code, message, details?}: ${res.text.slice(0, 1000)}`);
  }
  const body = parsed.data;
  expect(Object.keys(res.body as object).filter((k) => !ERROR_KEYS.has(k))).toEqual([]);
  expect(body.statusCode).toBe(status);
  expect(body.message.length).toBeGreaterThan(0);
  if (code !== undefined) expect(body.code).toBe(code);
  if (options.message !== undefined) expect(body.message).toMatch(options.message);
  if (options.field !== undefined) {
    expect(body.details?.map((d) => d.path)).toEqual(expect.arrayContaining([options.field]));
  }
  return body;
}
