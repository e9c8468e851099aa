import { LIMITS } from '@kapitan/shared';
import type { Execution } from '@kapitan/shared';
import { EMPTY_RUN_FORM, fieldOf, formFromExecution, toCreateExecutionRequest, type RunFormValue } from './run-request';

const M1 = '5f0c6d1e-2b7a-4c3d-9e8f-0a1b2c3d4e5f';
const M2 = '6f0c6d1e-2b7a-4c3d-9e8f-0a1b2c3d4e5f';

const form = (v: Partial<RunFormValue>): RunFormValue => ({ ...EMPTY_RUN_FORM, script: '#!/bin/sh\necho hi\n', ...v });

describe('run form → CreateExecutionRequest', () => {
  it('maps every field', () => {
    const r = toCreateExecutionRequest(
      form({
        args: '--verbose\n\nhello world\n',
        env: 'APP_ENV=prod\nGREETING=a=b c\n# comment\n',
        cwd: ' /srv/app ',
        timeoutSeconds: 60,
        expiresInSeconds: 600,
        targetMode: 'machines',
        machineIds: [M1, M2],
      }),
    );
    expect(r).toEqual({
      ok: true,
      request: {
        script: '#!/bin/sh\necho hi\n',
        args: ['--verbose', 'hello world'],
        env: { APP_ENV: 'prod', GREETING: 'a=b c' },
        cwd: '/srv/app',
        timeoutSeconds: 60,
        expiresInSeconds: 600,
        targets: { machineIds: [M1, M2] },
      },
    });
  });

  it('leaves optional fields out when empty', () => {
    const r = toCreateExecutionRequest(form({ targetMode: 'all' }));
    expect(r).toEqual({ ok: true, request: { script: '#!/bin/sh\necho hi\n', targets: { all: true } } });
  });

  it('targets by labels', () => {
    const r = toCreateExecutionRequest(form({ targetMode: 'labels', labels: 'env=prod\nrole=web' }));
    expect(r.ok && r.request.targets).toEqual({ labels: { env: 'prod', role: 'web' } });
  });

  it('puts each error on the field that shows it', () => {
    const r = toCreateExecutionRequest({
      ...EMPTY_RUN_FORM,
      script: '  ',
      env: '1BAD=x\nnot a pair',
      cwd: 'relative/path',
      timeoutSeconds: 0,
      targetMode: 'machines',
      machineIds: [],
    });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.script).toBe('Enter a script');
    expect(r.errors.env).toBe('line 2: expected NAME=value');
    expect(r.errors.cwd).toBe('an absolute path');
    expect(r.errors.timeoutSeconds).toBeDefined();
    expect(r.errors.machineIds).toBe('Pick at least one machine');
  });

  it('names the environment variable the shared schema rejects', () => {
    const r = toCreateExecutionRequest(form({ env: '1BAD=x', targetMode: 'all' }));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.env).toBe('"1BAD": environment names are letters, digits and _');
  });

  it('enforces the shared limits (script size, machine ids)', () => {
    const big = toCreateExecutionRequest(form({ script: 'x'.repeat(LIMITS.scriptMaxBytes + 1), targetMode: 'all' }));
    expect(!big.ok && big.errors.script).toBe(`at most ${LIMITS.scriptMaxBytes} bytes`);
    const bad = toCreateExecutionRequest(form({ targetMode: 'machines', machineIds: ['not-a-uuid'] }));
    expect(!bad.ok && bad.errors.machineIds).toBeTruthy();
  });

  it('asks for at least one label', () => {
    const r = toCreateExecutionRequest(form({ targetMode: 'labels', labels: '\n' }));
    expect(!r.ok && r.errors.labels).toBe('Give at least one key=value label');
  });

  it('routes request paths to form fields', () => {
    expect(fieldOf(['targets', 'machineIds', 0], 'machines')).toBe('machineIds');
    expect(fieldOf(['targets', 'labels', 'k'], 'labels')).toBe('labels');
    expect(fieldOf(['targets'], 'all')).toBe('targetMode');
    expect(fieldOf(['env', 'X'], 'all')).toBe('env');
    expect(fieldOf(['secrets', 0], 'all')).toBe('secrets');
  });

  it('sends the picked secrets by name, and refuses one that is also set in env on the secrets field', () => {
    const ok = toCreateExecutionRequest(form({ targetMode: 'all', secrets: ['DB_PASSWORD', 'API_TOKEN'] }));
    expect(ok).toEqual({ ok: true, request: { script: '#!/bin/sh\necho hi\n', secrets: ['DB_PASSWORD', 'API_TOKEN'], targets: { all: true } } });
    const clash = toCreateExecutionRequest(form({ targetMode: 'all', env: 'DB_PASSWORD=x', secrets: ['DB_PASSWORD'] }));
    expect(clash.ok).toBe(false);
    if (!clash.ok) expect(clash.errors.secrets).toContain('DB_PASSWORD is also set in env');
  });

  it('"run again" keeps the secrets by name', () => {
    const e = { script: 'x', args: [], env: {}, secrets: ['DB_PASSWORD'], cwd: null, timeoutSeconds: 5, machineId: M1 } as unknown as Execution;
    expect(formFromExecution(e).secrets).toEqual(['DB_PASSWORD']);
  });
});
