import type { CreateContainerRequestInput } from '@kapitan/shared';
import { parseKeyValueLines } from '../core/util/key-value';

/** The create form's text fields, as typed. */
export interface CreateFormValue {
  image: string;
  name: string;
  env: string;
  ports: string;
  volumes: string;
  restartPolicy: 'no' | 'always' | 'unless-stopped' | 'on-failure';
  command: string;
  labels: string;
}

/**
 * Turns the form's lines into a create request: env and labels `KEY=value`
 * per line, ports `[ip:]host:container[/udp]` or `container`, volumes
 * `source:target[:ro]`, the command one argument per line (argv, never a
 * shell line). The shared schema then checks the result.
 */
export function toCreateRequest(v: CreateFormValue): { request: CreateContainerRequestInput; errors: string[] } {
  const errors: string[] = [];
  const request: CreateContainerRequestInput = { image: v.image.trim(), restartPolicy: v.restartPolicy };
  if (v.name.trim()) request.name = v.name.trim();
  const env = parseKeyValueLines(v.env, 'KEY=value');
  errors.push(...env.errors.map((e) => `env: ${e}`));
  if (Object.keys(env.values).length) request.env = env.values;
  const labels = parseKeyValueLines(v.labels, 'key=value');
  errors.push(...labels.errors.map((e) => `labels: ${e}`));
  if (Object.keys(labels.values).length) request.labels = labels.values;
  const ports = lines(v.ports).map((line) => {
    const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3}):)?(?:(\d+):)?(\d+)(?:\/(tcp|udp))?$/.exec(line);
    if (!m) {
      errors.push(`ports: "${line}" is not [ip:]host:container[/udp]`);
      return null;
    }
    return { containerPort: Number(m[3]), ...(m[2] ? { hostPort: Number(m[2]) } : {}), ...(m[1] ? { hostIp: m[1] } : {}), protocol: (m[4] ?? 'tcp') as 'tcp' | 'udp' };
  });
  if (ports.length) request.ports = ports.filter((p) => p !== null);
  const volumes = lines(v.volumes).map((line) => {
    const parts = line.split(':');
    if (parts.length < 2 || parts.length > 3 || (parts[2] !== undefined && parts[2] !== 'ro')) {
      errors.push(`volumes: "${line}" is not source:target[:ro]`);
      return null;
    }
    return { source: parts[0]!, target: parts[1]!, ...(parts[2] === 'ro' ? { readOnly: true } : {}) };
  });
  if (volumes.length) request.volumes = volumes.filter((x) => x !== null);
  const command = v.command.split('\n').filter((l) => l.length > 0);
  if (command.length) request.command = command;
  return { request, errors };
}

const lines = (text: string): string[] => text.split('\n').map((l) => l.trim()).filter(Boolean);
