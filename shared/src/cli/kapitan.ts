#!/usr/bin/env node
/**
 * `kapitan`: the operator's command line, for CI pipelines and terminals. It
 * speaks only the public REST API with an API token, so anything it does an
 * operator can do with curl (README "Operators").
 *
 *   kapitan upload <path> --project <id> --kind script|file|image [--name <name>]
 *   kapitan run --project <id> (--script <text> | --script-file <path> | --file-id <id>)
 *               (--all | --label k=v … | --machine <id> …) [--arg a …] [--env K=V …]
 *               [--secret NAME …] [--timeout <s>] [--no-follow]
 *   kapitan deploy <fileId|path> --project <id> --path /target/file [--mode 0644] [--owner user:group]
 *               (--all | --label k=v … | --machine <id> …) [--no-follow]
 *   kapitan distribute <fileId|path> --project <id> (--all | --label k=v … | --machine <id> …) [--no-follow]
 *
 * A path (an existing local file) is uploaded first (kind `file` for deploy,
 * `image` for distribute), then delivered.
 *
 * The server and token come from KAPITAN_URL and KAPITAN_TOKEN (or --url,
 * --token: a token on the command line is visible to other users of the
 * machine in `ps`, so the environment is the better place). Results go to
 * stdout as JSON; progress and diagnostics to stderr. Exit codes: 0 success,
 * 1 the work failed (a run not succeeded everywhere, an upload refused),
 * 2 usage error.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { FileKindSchema } from '../files';
import type { CreateExecutionRequest, CreateExecutionResponse, Targets } from '../executions';
import type { Delivery } from '../deliveries';
import { Api, ApiFailure } from './api';
import { followDelivery } from './deliver';
import { describeOutcome, followRun } from './follow';
import { uploadFile } from './upload';

export interface CliIO {
  argv: string[];
  env: NodeJS.ProcessEnv;
  stdout: (text: string) => void;
  stderr: { isTTY?: boolean; write(text: string): unknown };
}

class UsageError extends Error {}

const USAGE = `usage:
  kapitan upload <path> --project <id> --kind script|file|image [--name <name>]
  kapitan run --project <id> (--script <text> | --script-file <path> | --file-id <id>)
              (--all | --label k=v ... | --machine <id> ...)
              [--arg <a> ...] [--env K=V ...] [--secret NAME ...] [--timeout <seconds>] [--no-follow]
  kapitan deploy <fileId|path> --project <id> --path /target/file [--mode 0644] [--owner user:group]
              (--all | --label k=v ... | --machine <id> ...) [--no-follow]
  kapitan distribute <fileId|path> --project <id> (--all | --label k=v ... | --machine <id> ...) [--no-follow]
options for every command:
  --url <url>      the Kapitan server (default: $KAPITAN_URL)
  --token <token>  an API token (default: $KAPITAN_TOKEN; prefer the environment)
exit codes: 0 success, 1 the work failed, 2 usage error`;

const COMMON = {
  url: { type: 'string' },
  token: { type: 'string' },
  project: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function main(io: CliIO): Promise<number> {
  const [command, ...rest] = io.argv;
  try {
    switch (command) {
      case 'upload':
        return await upload(rest, io);
      case 'run':
        return await run(rest, io);
      case 'deploy':
        return await deliver('deploy', rest, io);
      case 'distribute':
        return await deliver('distribution', rest, io);
      case undefined:
        io.stderr.write(`${USAGE}\n`);
        return 2;
      case 'help':
      case '--help':
      case '-h':
        io.stdout(`${USAGE}\n`);
        return 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr.write(`kapitan: ${(err as Error).message}\n${USAGE}\n`);
      return 2;
    }
    io.stderr.write(`kapitan: ${err instanceof ApiFailure ? err.message : (err as Error).message}\n`);
    return 1;
  }
}

function connect(values: { url?: string; token?: string }, env: NodeJS.ProcessEnv): Api {
  const baseUrl = values.url ?? env.KAPITAN_URL;
  const token = values.token ?? env.KAPITAN_TOKEN;
  if (!baseUrl) throw new UsageError('no server: set KAPITAN_URL or pass --url');
  if (!/^https?:\/\/[^/]/.test(baseUrl)) throw new UsageError(`KAPITAN_URL / --url must be an http(s) URL, not "${baseUrl}"`);
  if (!token) throw new UsageError('no API token: set KAPITAN_TOKEN or pass --token');
  return new Api({ baseUrl, token });
}

function required(value: string | undefined, option: string): string {
  if (!value) throw new UsageError(`--${option} is required`);
  return value;
}

async function upload(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...COMMON, kind: { type: 'string' }, name: { type: 'string' } },
  });
  if (values.help) return help(io);
  if (positionals.length !== 1) throw new UsageError('upload takes exactly one path');
  const kind = FileKindSchema.safeParse(values.kind);
  if (!kind.success) throw new UsageError('--kind must be script, file or image');
  const api = connect(values, io.env);
  const stored = await uploadFile(api, {
    projectId: required(values.project, 'project'),
    file: positionals[0],
    kind: kind.data,
    name: values.name,
    progress: io.stderr,
  });
  io.stdout(`${JSON.stringify(stored)}\n`);
  return 0;
}

async function run(args: string[], io: CliIO): Promise<number> {
  const { values } = parseArgs({
    args,
    allowPositionals: false,
    options: {
      ...COMMON,
      script: { type: 'string' },
      'script-file': { type: 'string' },
      'file-id': { type: 'string' },
      ...TARGET_OPTIONS,
      arg: { type: 'string', multiple: true },
      env: { type: 'string', multiple: true },
      secret: { type: 'string', multiple: true },
      timeout: { type: 'string' },
      'no-follow': { type: 'boolean' },
    },
  });
  if (values.help) return help(io);
  const projectId = required(values.project, 'project');
  const sources = [values.script, values['script-file'], values['file-id']].filter((v) => v !== undefined);
  if (sources.length !== 1) throw new UsageError('name the script once: --script, --script-file or --file-id');
  const body: Record<string, unknown> = { targets: targets(values) };
  if (values.script !== undefined) body.script = values.script;
  if (values['script-file'] !== undefined) body.script = readFileSync(values['script-file'], 'utf8');
  if (values['file-id'] !== undefined) body.fileId = values['file-id'];
  if (values.arg) body.args = values.arg;
  if (values.env) body.env = Object.fromEntries(values.env.map(keyValue('--env')));
  if (values.secret) body.secrets = values.secret;
  if (values.timeout !== undefined) {
    const t = Number(values.timeout);
    if (!Number.isInteger(t) || t < 1) throw new UsageError('--timeout is a whole number of seconds');
    body.timeoutSeconds = t;
  }
  const api = connect(values, io.env);
  const created = await api.request<CreateExecutionResponse>('POST', `/projects/${projectId}/executions`, body as CreateExecutionRequest);
  if (values['no-follow']) {
    io.stdout(`${JSON.stringify(created)}\n`);
    return 0;
  }
  io.stderr.write(`run ${created.runId} on ${created.executions.length} machine(s)\n`);
  const result = await followRun(api, {
    projectId,
    runId: created.runId,
    executionIds: created.executions.map((e) => e.id),
    stdout: io.stdout,
    stderr: (t) => io.stderr.write(t),
  });
  for (const e of result.executions) io.stderr.write(`${describeOutcome(e, result.hostnames.get(e.machineId))}\n`);
  return result.ok ? 0 : 1;
}

const TARGET_OPTIONS = {
  all: { type: 'boolean' },
  label: { type: 'string', multiple: true },
  machine: { type: 'string', multiple: true },
} as const;

async function deliver(kind: 'deploy' | 'distribution', args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { ...COMMON, ...TARGET_OPTIONS, path: { type: 'string' }, mode: { type: 'string' }, owner: { type: 'string' }, 'no-follow': { type: 'boolean' } },
  });
  if (values.help) return help(io);
  if (positionals.length !== 1) throw new UsageError(`${kind === 'deploy' ? 'deploy' : 'distribute'} takes exactly one file id or path`);
  const projectId = required(values.project, 'project');
  const body: Record<string, unknown> = { targets: targets(values) };
  if (kind === 'deploy') {
    body.path = required(values.path, 'path');
    if (values.mode !== undefined) body.mode = values.mode;
    if (values.owner !== undefined) body.owner = values.owner;
  } else if (values.path || values.mode || values.owner) {
    throw new UsageError('--path, --mode and --owner are for deploy; distribute loads an image');
  }
  const api = connect(values, io.env);
  const what = positionals[0];
  body.fileId = existsSync(what)
    ? (await uploadFile(api, { projectId, file: what, kind: kind === 'deploy' ? 'file' : 'image', progress: io.stderr })).id
    : what;
  const created = await api.request<Delivery>('POST', `/projects/${projectId}/${kind === 'deploy' ? 'deploys' : 'distributions'}`, body);
  if (values['no-follow']) {
    io.stdout(`${JSON.stringify(created)}\n`);
    return 0;
  }
  io.stderr.write(`${kind} ${created.id} of ${created.file.name} to ${created.machines.length} machine(s)\n`);
  const result = await followDelivery(api, projectId, created.id, (line) => io.stderr.write(`${line}\n`));
  io.stdout(`${JSON.stringify(result.delivery)}\n`);
  return result.ok ? 0 : 1;
}

function targets(values: { all?: boolean; label?: string[]; machine?: string[] }): Targets {
  const t: Targets = {};
  if (values.all) t.all = true;
  if (values.label?.length) t.labels = Object.fromEntries(values.label.map(keyValue('--label')));
  if (values.machine?.length) t.machineIds = values.machine;
  if (!t.all && !t.labels && !t.machineIds) throw new UsageError('name the targets: --all, --label k=v or --machine <id>');
  return t;
}

function keyValue(option: string) {
  return (pair: string): [string, string] => {
    const at = pair.indexOf('=');
    if (at < 1) throw new UsageError(`${option} takes NAME=value, not "${pair}"`);
    return [pair.slice(0, at), pair.slice(at + 1)];
  };
}

function help(io: CliIO): number {
  io.stdout(`${USAGE}\n`);
  return 0;
}

if (require.main === module) {
  main({ argv: process.argv.slice(2), env: process.env, stdout: (t) => process.stdout.write(t), stderr: process.stderr }).then(
    (code) => (process.exitCode = code),
  );
}
