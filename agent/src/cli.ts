/**
 * `kapitan-agent enrol | run | status | help`. Exit codes: 0 success,
 * 1 failure (refused enrolment, not enrolled, already running…), 2 usage error,
 * 3 the machine is revoked (a supervisor should not restart it:
 * systemd `RestartPreventExitStatus=3`), 4 the server failed the trust
 * configured at enrolment (`--pin`, `--ca-file`): nothing was sent to it,
 * 5 the client policy file is unsafe or invalid (`run` refuses to start
 * until its owner fixes it).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import {
  EnrolResponseSchema,
  ErrorBodySchema,
  LabelKeySchema,
  LabelsSchema,
  type EnrolRequest,
  type Labels,
  type MachineFacts,
} from '@kapitan/shared';
import { Agent, DEPLOY_DIR } from './agent';
import { loadPolicy, policyPath, PolicyFileError } from './policy';
import { configFromEnv, ENV } from './config';
import { agentVersion, collectFacts } from './facts';
import { ACTIVE_FILE } from './journal';
import { createLogger } from './logger';
import { isTrustFailure, parseCaPem, PinMismatchError, parsePins, parseProxyUrl, requestJson, serverTransport, type ServerTrust } from './trust';
import { AlreadyRunningError, acquirePidFile, defaultStateDir, readPidFile, readState, statePath, writeState, type AgentState } from './state';

export interface CliContext {
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  env?: NodeJS.ProcessEnv;
  /** `run` stops gracefully when this aborts (main.ts wires SIGTERM/SIGINT to it). */
  stopSignal?: AbortSignal;
  /** Facts used by `enrol` (tests). */
  facts?: () => Promise<MachineFacts>;
  /** `run` reads its client policy again each time this calls back (main.ts wires SIGHUP to it). */
  onReload?: (handler: () => void) => void;
  /** Line sink of the JSON logger of `run` (default stderr). */
  logWrite?: (line: string) => void;
}

class UsageError extends Error {}
class CliError extends Error {}
/** The server revoked this machine: exit code 3, and `run` stays refused until the machine is enrolled again. */
class RevokedError extends Error {}
/** The server failed the configured trust (pins, CA): exit code 4. */
class UntrustedServerError extends Error {}

export const EXIT_REVOKED = 3;
export const EXIT_UNTRUSTED = 4;

const untrustedMessage = (server: string, err: Error, configured = true): string => {
  const code = (err as Error & { code?: string }).code;
  return (
    `refusing ${server}: ${err instanceof PinMismatchError ? '' : 'its certificate does not verify against the trusted CA: '}${err.message}${code && !err.message.includes(code) ? ` (${code})` : ''}. ` +
    'Nothing was sent to it. ' +
    (configured
      ? `If the server's CA key really changed, enrol again with its new pins ("${BIN} enrol --force --pin …").`
      : `A server with its own CA: enrol with its CA and pins ("--ca-file ca.pem --pin …", from GET /api/instance/tls).`)
  );
};

/** The client policy file is writable by the agent's user, or does not parse: `run` does not start (policy.ts). */
export const EXIT_POLICY = 5;

const revokedMessage = (state: AgentState, stateDir: string): string =>
  `this machine (${state.machineId}) was revoked by the server at ${state.revoked!.at}: ${state.revoked!.reason}. ` +
  `It will not connect again; enrol it again with "${BIN} enrol --force --server ${state.server} --token …" (state: ${statePath(stateDir)})`;

const BIN = 'kapitan-agent';

const HELP: Record<string, string> = {
  main: `Usage: ${BIN} <command> [options]

The Kapitan agent: dials out to the Kapitan server and runs what it is sent.

Commands:
  enrol    exchange a project enrolment token for a machine credential
  run      connect to the server and work (long-running)
  status   show the enrolment and whether a run process is alive
  help     show help for a command ("${BIN} help enrol")

Options:
  -h, --help      show help
  -v, --version   show the agent version

Environment: ${ENV.stateDir} (state directory), ${ENV.logLevel}, HTTPS_PROXY /
NO_PROXY, and the tunables listed in the README.

Exit codes: 0 ok, 1 failure, 2 usage error, 3 machine revoked, 4 the server
failed the pins or CA given at enrolment (nothing was sent to it).
`,
  enrol: `Usage: ${BIN} enrol --server URL --token TOKEN [--pin PIN]... [--ca-file FILE] [--proxy URL]
             [--label key=value]... [--state-dir DIR] [--force]

Enrol this machine in a Kapitan project. The credential the server returns is
saved in DIR/state.json (mode 0600).

Options:
  --server URL        base URL of the Kapitan server (http:// or https://)
  --token TOKEN       the project's enrolment token (or env KAPITAN_AGENT_ENROL_TOKEN)
  --pin PIN           base64 SHA-256 of a key the server's certificate chain
                      must hold (the "pins" of GET /api/instance/tls);
                      repeatable: pin the current and the next CA key. Kept in
                      the state and checked at every connection, this one
                      included, before anything is sent. Needs an https server.
  --ca-file FILE      PEM certificates to verify the server with instead of the
                      system's (the instance CA, ca.pem of the client bundle;
                      or a TLS-inspecting proxy's CA). Its content is kept.
  --proxy URL         HTTP CONNECT proxy to the server, kept in the state
                      (default: HTTPS_PROXY / HTTP_PROXY, honouring NO_PROXY)
  --label key=value   a label for this machine; repeatable. Kept only if the
                      token allows agent labels, and never over the token's
  --state-dir DIR     state directory (default: $${ENV.stateDir}, else
                      /var/lib/kapitan-agent as root, else ~/.kapitan-agent)
  --force             enrol again even if this state directory is enrolled
  -h, --help          show this help
`,
  run: `Usage: ${BIN} run [--state-dir DIR]

Connect to the server and keep the connection: receive scripts, run them,
stream their output. Reconnects with backoff; stops on SIGTERM or SIGINT.
If the server revokes the machine (or deletes it or its project), it stops,
records that in the state file and exits 3; later runs refuse to start (exit
3) until the machine is enrolled again. A server that fails the pins or the
CA given at enrolment is sent nothing: run stops and exits 4. Logs JSON
lines on stderr.

Reads the client policy from KAPITAN_AGENT_POLICY_FILE (default
/etc/kapitan/agent-policy.json) first: a file writable by group or others,
or owned by the agent's (non-root) user, or that is not valid policy JSON,
makes it exit 4 without connecting. No file: everything is allowed.
SIGHUP reads it again: a valid new policy applies at once and is reported
(the agent reconnects); an unsafe or invalid one is logged and ignored.

Options:
  --state-dir DIR     state directory (see "${BIN} help enrol")
  -h, --help          show this help
`,
  status: `Usage: ${BIN} status [--state-dir DIR] [--json]

Show the server, machine id, project id, enrolment time, and whether a run
process is alive. Exits 0 when enrolled, 1 when not.

Options:
  --state-dir DIR     state directory (see "${BIN} help enrol")
  --json              print JSON
  -h, --help          show this help
`,
};

const COMMON = {
  'state-dir': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function runCli(argv: string[], ctx: CliContext = {}): Promise<number> {
  const out = ctx.stdout ?? ((s: string) => void process.stdout.write(s));
  const err = ctx.stderr ?? ((s: string) => void process.stderr.write(s));
  const env = ctx.env ?? process.env;
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case undefined:
        err(HELP.main!);
        return 2;
      case 'help':
      case '--help':
      case '-h': {
        const topic = command === 'help' ? rest[0] : undefined;
        if (topic !== undefined && !HELP[topic]) throw new UsageError(`unknown command "${topic}"`);
        out(HELP[topic ?? 'main']!);
        return 0;
      }
      case 'version':
      case '--version':
      case '-v':
        out(agentVersion() + '\n');
        return 0;
      case 'enrol':
      case 'enroll':
        return await enrol(rest, env, out, ctx);
      case 'run':
        return await run(rest, env, out, ctx);
      case 'status':
        return status(rest, env, out);
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (e) {
    if (e instanceof UsageError) {
      const topic = command && HELP[command] && command !== 'main' ? ` ${command}` : '';
      err(`${BIN}${topic}: ${e.message}\nRun "${BIN}${topic} --help" for usage.\n`);
      return 2;
    }
    if (e instanceof CliError) {
      err(`${BIN}: ${e.message}\n`);
      return 1;
    }
    if (e instanceof RevokedError) {
      err(`${BIN}: ${e.message}\n`);
      return EXIT_REVOKED;
    }
    if (e instanceof UntrustedServerError) {
      err(`${BIN}: ${e.message}\n`);
      return EXIT_UNTRUSTED;
    }
    if (e instanceof PolicyFileError) {
      err(`${BIN}: refusing to start: ${e.message}\n`);
      return EXIT_POLICY;
    }
    err(`${BIN}: ${(e as Error)?.message ?? String(e)}\n`);
    return 1;
  }
}

type OptionsConfig = NonNullable<Parameters<typeof parseArgs>[0]>['options'];

function parse<O extends OptionsConfig>(args: string[], options: O) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) throw new UsageError((e as Error).message);
    throw e;
  }
}

function stateDirOf(values: { 'state-dir'?: string | boolean | (string | boolean)[] }, env: NodeJS.ProcessEnv): string {
  const v = values['state-dir'];
  if (typeof v === 'string') {
    if (v.trim() === '') throw new UsageError('--state-dir must not be empty');
    return path.resolve(v);
  }
  return defaultStateDir(env);
}

/** Validate and normalise the server URL: http(s), no credentials, query or fragment, no trailing slash. */
export function normaliseServerUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new UsageError(`--server must be an http(s) URL, got ${JSON.stringify(raw)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`--server must be an http(s) URL, got ${JSON.stringify(raw)}`);
  if (u.username || u.password) throw new UsageError('--server must not contain credentials');
  if (u.search || u.hash) throw new UsageError('--server must not contain a query or a fragment');
  return (u.origin + u.pathname).replace(/\/+$/, '');
}

/** `["a=b", "c=d=e"]` → `{a: "b", c: "d=e"}`, validated with LabelsSchema. */
export function parseLabels(items: string[]): Labels {
  const labels: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`--label must be key=value, got ${JSON.stringify(item)}`);
    const key = item.slice(0, eq);
    const value = item.slice(eq + 1);
    const k = LabelKeySchema.safeParse(key);
    if (!k.success) throw new UsageError(`invalid label key ${JSON.stringify(key)}: ${k.error.issues[0]?.message}`);
    if (Object.hasOwn(labels, key)) throw new UsageError(`label "${key}" given twice`);
    labels[key] = value;
  }
  const parsed = LabelsSchema.safeParse(labels);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UsageError(`invalid labels${issue?.path.length ? ` (${issue.path.join('.')})` : ''}: ${issue?.message}`);
  }
  return parsed.data;
}

async function enrol(args: string[], env: NodeJS.ProcessEnv, out: (s: string) => void, ctx: CliContext): Promise<number> {
  const values = parse(args, {
    ...COMMON,
    server: { type: 'string' },
    token: { type: 'string' },
    label: { type: 'string', multiple: true },
    force: { type: 'boolean' },
    pin: { type: 'string', multiple: true },
    'ca-file': { type: 'string' },
    proxy: { type: 'string' },
  });
  if (values.help) {
    out(HELP.enrol!);
    return 0;
  }
  if (typeof values.server !== 'string') throw new UsageError('--server is required');
  const server = normaliseServerUrl(values.server);
  const token = typeof values.token === 'string' ? values.token : env.KAPITAN_AGENT_ENROL_TOKEN;
  if (!token) throw new UsageError('--token is required');
  if (token.length > 200) throw new UsageError('--token is too long');
  const labels = parseLabels(Array.isArray(values.label) ? values.label.map(String) : []);
  const trust = trustOf(values, server);
  const stateDir = stateDirOf(values, env);

  let existing: AgentState | null = null;
  try {
    existing = readState(stateDir);
  } catch {
    existing = null; // corrupt: enrolling again repairs it
  }
  if (existing && !values.force) {
    throw new CliError(`already enrolled as machine ${existing.machineId} (${statePath(stateDir)}); use --force to enrol again`);
  }

  const facts = await (ctx.facts ?? (() => collectFacts({ dockerSocket: env[ENV.dockerSocket] || undefined })))();
  const body: EnrolRequest = { token, facts, labels };
  const url = `${server}/api/agent/enrol`;
  let res: Awaited<ReturnType<typeof requestJson>>;
  let transport: Awaited<ReturnType<typeof serverTransport>> | undefined;
  try {
    // The token goes in the body: written only once the handshake has passed the pins and the CA.
    transport = await serverTransport(server, trust);
    res = await requestJson(url, 'POST', body, transport.requestOptions, 30_000);
  } catch (e) {
    if (isTrustFailure(e)) throw new UntrustedServerError(untrustedMessage(server, e, trust.pins.length > 0 || !!trust.caPem));
    const code = (e as { code?: string }).code;
    throw new CliError(`could not reach ${server}${transport?.proxy ? ` through the proxy ${redactProxy(transport.proxy)}` : ''}: ${code ?? (e as Error).message}`);
  } finally {
    transport?.destroy();
  }
  const text = res.text;
  let json: unknown = undefined;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (res.status < 200 || res.status > 299) {
    const e = ErrorBodySchema.safeParse(json);
    if (e.success) throw new CliError(`enrolment refused: ${e.data.message} (${e.data.code}, HTTP ${res.status})`);
    throw new CliError(`enrolment failed: HTTP ${res.status} ${res.statusText}`);
  }
  const parsed = EnrolResponseSchema.safeParse(json);
  if (!parsed.success) throw new CliError(`the server answered the enrolment with an unexpected body (HTTP ${res.status})`);
  const state: AgentState = {
    version: 1,
    server,
    machineId: parsed.data.machineId,
    projectId: parsed.data.projectId,
    credential: parsed.data.credential,
    enrolledAt: new Date().toISOString(),
    labels,
    ...(trust.pins.length ? { pins: [...trust.pins] } : {}),
    ...(trust.caPem ? { caPem: trust.caPem } : {}),
    ...(trust.proxy ? { proxy: trust.proxy } : {}),
  };
  writeState(stateDir, state);
  if (existing) fs.rmSync(path.join(stateDir, ACTIVE_FILE), { force: true }); // the old machine's executions
  out(`enrolled machine ${state.machineId} in project ${state.projectId}\nstate saved to ${statePath(stateDir)}\n`);
  return 0;
}

/** `--pin`, `--ca-file`, `--proxy`, validated. */
function trustOf(values: { pin?: unknown; 'ca-file'?: unknown; proxy?: unknown }, server: string): ServerTrust & { pins: string[] } {
  let pins: string[];
  let proxy: string | undefined;
  try {
    pins = parsePins(Array.isArray(values.pin) ? values.pin.map(String) : []);
    proxy = typeof values.proxy === 'string' ? parseProxyUrl(values.proxy) : undefined;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const https = server.startsWith('https:');
  if (pins.length && !https) throw new UsageError('--pin needs an https:// --server: pins are checked in the TLS handshake');
  let caPem: string | undefined;
  const caFile = values['ca-file'];
  if (typeof caFile === 'string') {
    if (!https) throw new UsageError('--ca-file needs an https:// --server');
    let text: string;
    try {
      text = fs.readFileSync(caFile, 'utf8');
    } catch (e) {
      throw new UsageError(`--ca-file ${caFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    try {
      caPem = parseCaPem(text, `--ca-file ${caFile}`);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  }
  return { pins, caPem, proxy };
}

/** A proxy URL for messages: its credentials are not for logs. */
function redactProxy(proxy: string): string {
  const u = new URL(proxy);
  if (u.username || u.password) {
    u.username = '***';
    u.password = '';
  }
  return u.href.replace(/\/$/, '');
}

function loadEnrolled(stateDir: string): AgentState {
  let state: AgentState | null;
  try {
    state = readState(stateDir);
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  if (!state) throw new CliError(`not enrolled (no ${statePath(stateDir)}); run "${BIN} enrol" first`);
  return state;
}

async function run(args: string[], env: NodeJS.ProcessEnv, out: (s: string) => void, ctx: CliContext): Promise<number> {
  const values = parse(args, { ...COMMON });
  if (values.help) {
    out(HELP.run!);
    return 0;
  }
  const stateDir = stateDirOf(values, env);
  let config;
  try {
    config = configFromEnv(env);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const state = loadEnrolled(stateDir);
  if (state.revoked) throw new RevokedError(revokedMessage(state, stateDir));
  // Before the lock and the connection: an unsafe policy must stop the agent before it takes any work.
  const policyFile = policyPath(env);
  const deployRoots = config.deployDirs.length ? config.deployDirs : [path.join(stateDir, DEPLOY_DIR)];
  const policy = loadPolicy(policyFile, deployRoots);
  const logger = createLogger({ level: config.logLevel, write: ctx.logWrite });
  let lock: { release(): void };
  try {
    lock = acquirePidFile(stateDir);
  } catch (e) {
    if (e instanceof AlreadyRunningError) throw new CliError(e.message);
    throw e;
  }
  let untrusted: (err: Error) => void = () => undefined;
  const refusedServer = new Promise<Error>((resolve) => (untrusted = resolve));
  let transport: Awaited<ReturnType<typeof serverTransport>>;
  try {
    transport = await serverTransport(state.server, { pins: state.pins ?? [], caPem: state.caPem, proxy: state.proxy }, { onUntrusted: (e) => untrusted(e) });
  } catch (e) {
    lock.release();
    throw e;
  }
  const agent = new Agent({
    state,
    stateDir,
    config,
    logger,
    connection: { socketOptions: transport.socketOptions },
    requestOptions: transport.requestOptions,
    policy,
  });
  try {
    logger.info('kapitan-agent starting', {
      version: agentVersion(),
      server: state.server,
      machineId: state.machineId,
      stateDir,
      pid: process.pid,
      pins: state.pins?.length ?? 0,
      ca: state.caPem ? 'enrolled' : 'system',
      proxy: transport.proxy ? redactProxy(transport.proxy) : null,
      policy: policy.found ? { path: policy.path, sha256: policy.sha256, effective: policy.effective } : `no policy file at ${policy.path}: everything allowed`,
    });
    // Remembered before anything else, so a supervisor's restart is refused even if this process dies while stopping.
    const revoked = new Promise<string>((resolve) =>
      agent.connection.once('revoked', (reason) => {
        const marked: AgentState = { ...state, revoked: { at: new Date().toISOString(), reason } };
        try {
          writeState(stateDir, marked);
        } catch (e) {
          logger.error('could not record the revocation in the state file', { error: (e as Error).message });
        }
        resolve(revokedMessage(marked, stateDir));
      }),
    );
    ctx.onReload?.(() => agent.reloadPolicy(() => loadPolicy(policyFile, deployRoots)));
    agent.start();
    const outcome = await new Promise<{ revoked: string } | { untrusted: Error } | null>((resolve) => {
      void revoked.then((message) => resolve({ revoked: message }));
      // A server that fails the pins is not retried: it is not ours, or ours was replaced; an operator must look.
      void refusedServer.then((e) => resolve({ untrusted: e }));
      if (!ctx.stopSignal) return; // runs until the process ends (or is revoked)
      if (ctx.stopSignal.aborted) return resolve(null);
      ctx.stopSignal.addEventListener('abort', () => resolve(null), { once: true });
    });
    logger.info('kapitan-agent stopping');
    await agent.stop();
    transport.destroy();
    logger.info('kapitan-agent stopped');
    if (outcome && 'untrusted' in outcome) {
      const message = untrustedMessage(state.server, outcome.untrusted);
      logger.error('kapitan-agent exits: the server failed the enrolled pins or CA', { exitCode: EXIT_UNTRUSTED, error: message });
      throw new UntrustedServerError(message);
    }
    if (outcome) {
      logger.error('kapitan-agent exits: this machine is revoked', { exitCode: EXIT_REVOKED });
      throw new RevokedError(outcome.revoked);
    }
    return 0;
  } finally {
    lock.release();
  }
}

function status(args: string[], env: NodeJS.ProcessEnv, out: (s: string) => void): number {
  const values = parse(args, { ...COMMON, json: { type: 'boolean' } });
  if (values.help) {
    out(HELP.status!);
    return 0;
  }
  const stateDir = stateDirOf(values, env);
  const state = loadEnrolled(stateDir);
  const pid = readPidFile(stateDir);
  const running = pid?.alive === true;
  if (values.json) {
    out(
      JSON.stringify({
        server: state.server,
        machineId: state.machineId,
        projectId: state.projectId,
        enrolledAt: state.enrolledAt,
        labels: state.labels,
        revoked: state.revoked ?? null,
        pins: state.pins ?? [],
        ca: state.caPem ? 'enrolled' : 'system',
        proxy: state.proxy ? redactProxy(state.proxy) : null,
        stateDir,
        running,
        pid: running ? pid!.pid : null,
      }) + '\n',
    );
    return 0;
  }
  const agentLine = running ? `running (pid ${pid!.pid})` : pid ? `not running (stale pid file: ${pid.pid})` : 'not running';
  out(
    [
      `server:      ${state.server}`,
      `machine id:  ${state.machineId}`,
      `project id:  ${state.projectId}`,
      `enrolled at: ${state.enrolledAt}`,
      `labels:      ${Object.entries(state.labels).map(([k, v]) => `${k}=${v}`).join(', ') || '(none)'}`,
      ...(state.revoked ? [`revoked:     ${state.revoked.at}: ${state.revoked.reason}`] : []),
      `pins:        ${state.pins?.join(', ') || '(none)'}`,
      `trusted CA:  ${state.caPem ? 'the one given at enrolment' : 'the system\'s'}`,
      `proxy:       ${state.proxy ? redactProxy(state.proxy) : '(environment)'}`,
      `state dir:   ${stateDir}`,
      `agent:       ${agentLine}`,
    ].join('\n') + '\n',
  );
  return 0;
}
