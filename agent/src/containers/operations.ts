/**
 * Container operations on this agent: start, stop, restart, remove, and
 * create-and-start from an image already on the machine (never pulled).
 *
 * Each operation id is applied once (operation-journal.ts); its started and
 * finished reports travel through the outbox, so they reach the server at
 * least once. "Succeeded" means what the operator asked for is true on the
 * engine: a started or created container is running, and healthy when it
 * has a healthcheck — within the spec's bounded wait, else failed with why.
 */
import type { ContainerOperationDispatch, ContainerOperationFinished, CreateContainerRequest } from '@kapitan/shared';
import { CONTAINER_LIMITS } from '@kapitan/shared';
import type Dockerode from 'dockerode';
import { silentLogger, type Logger } from '../logger';
import type { Outbox, RestoredStream } from '../outbox';
import { dockerError, statusCodeOf } from './docker-target';
import { containerOperationChannel } from './operation-channel';
import type { OperationJournal } from './operation-journal';

/** Label on every container Kapitan creates: which operation made it. */
export const OPERATION_LABEL = 'kapitan.operation';

export interface ContainerOperationsOptions {
  outbox: Outbox;
  journal: OperationJournal;
  /** The engine as it is now; null while Docker is unavailable (with the reason). */
  docker: () => { client: Dockerode | null; reason: string | null };
  /** A container changed because of an operation: report it without waiting for its event. */
  touched?: (containerId: string) => void;
  logger?: Logger;
  /** Why the client policy refuses an operation (`image` for create), or null. Default: nothing refused. */
  refuse?: (kind: ContainerOperationDispatch['kind'], image: string | null) => string | null;
  /** Poll interval of the wait for running/healthy. Default 250 ms. */
  pollMs?: number;
  /**
   * A container without a healthcheck counts as running once it has kept
   * running (same start, no restart) this long: one that exits at once is
   * "running" for an instant and must not pass. Default 1000 ms.
   */
  settleMs?: number;
}

type Outcome = { ok: true; containerId: string | null } | { ok: false; error: string; containerId: string | null };

export class ContainerOperations {
  private readonly applying = new Set<string>();
  private readonly logger: Logger;

  constructor(private readonly options: ContainerOperationsOptions) {
    this.logger = options.logger ?? silentLogger;
  }

  /**
   * At start-up: operations a previous process began and never finished are
   * reported failed, not applied again (whether Docker did it is unknown;
   * the container list shows the truth).
   */
  recover(restored: readonly RestoredStream[] = []): number {
    // A result journalled just before a crash, whose report had not been queued yet.
    for (const r of restored) {
      if (r.channel !== containerOperationChannel.name || r.closed) continue;
      const result = this.options.journal.get(r.key)?.result;
      if (result) this.options.outbox.close(containerOperationChannel, r.key, result);
    }
    const left = this.options.journal.interrupted();
    for (const r of left) {
      this.report({
        operationId: r.operationId,
        status: 'failed',
        error: 'the agent restarted while applying this operation; check the container list for its effect',
        containerId: null,
        finishedAt: new Date().toISOString(),
      });
    }
    return left.length;
  }

  /** `container-operation:dispatch` (parsed). A repeat applies nothing and sends the known result again. */
  handle(d: ContainerOperationDispatch): 'applied' | 'duplicate' {
    const known = this.options.journal.get(d.operationId);
    if (this.applying.has(d.operationId) || known) {
      this.logger.info('ignoring a repeated container operation', { operationId: d.operationId, finished: !!known?.result });
      if (known?.result && !this.applying.has(d.operationId)) {
        if (this.options.outbox.keys(containerOperationChannel).includes(d.operationId)) this.options.outbox.resend(containerOperationChannel, d.operationId);
        else this.options.outbox.close(containerOperationChannel, d.operationId, known.result);
      }
      return 'duplicate';
    }
    const startedAt = new Date().toISOString();
    const refused = this.options.refuse?.(d.kind, d.kind === 'create' ? (d.spec?.image ?? null) : null) ?? null;
    if (refused) {
      // Journalled like any result, so a repeated dispatch gets the same answer and nothing is applied.
      this.options.journal.begin(d.operationId, startedAt);
      this.logger.warn('container operation refused by the client policy', { operationId: d.operationId, kind: d.kind, reason: refused });
      this.report({ operationId: d.operationId, status: 'refused', error: refused.slice(0, CONTAINER_LIMITS.errorMax), containerId: d.containerId, finishedAt: new Date().toISOString() });
      return 'applied';
    }
    this.options.journal.begin(d.operationId, startedAt);
    this.applying.add(d.operationId);
    this.options.outbox.open(containerOperationChannel, d.operationId, { operationId: d.operationId, startedAt });
    void this.apply(d)
      .catch((err): Outcome => ({ ok: false, error: dockerError(err), containerId: d.containerId }))
      .then((o) => {
        this.applying.delete(d.operationId);
        const result: ContainerOperationFinished = {
          operationId: d.operationId,
          status: o.ok ? 'succeeded' : 'failed',
          error: o.ok ? null : o.error.slice(0, CONTAINER_LIMITS.errorMax),
          containerId: o.containerId,
          finishedAt: new Date().toISOString(),
        };
        this.logger.info('container operation finished', { operationId: d.operationId, kind: d.kind, status: result.status, error: result.error });
        this.report(result);
        if (o.containerId) this.options.touched?.(o.containerId);
      });
    return 'applied';
  }

  private report(result: ContainerOperationFinished): void {
    this.options.journal.finish(result);
    this.options.outbox.close(containerOperationChannel, result.operationId, result);
  }

  private async apply(d: ContainerOperationDispatch): Promise<Outcome> {
    const { client: docker, reason } = this.options.docker();
    if (!docker) return { ok: false, error: `Docker is not available on this machine: ${reason ?? 'unknown reason'}`, containerId: d.containerId };
    if (d.kind === 'create') {
      if (!d.spec) return { ok: false, error: 'create without a spec', containerId: null };
      return this.create(docker, d.operationId, d.spec);
    }
    const id = d.containerId;
    if (!id) return { ok: false, error: `${d.kind} needs a container id`, containerId: null };
    const c = docker.getContainer(id);
    try {
      if (d.kind === 'stop') {
        await ignore304(c.stop());
        return { ok: true, containerId: id };
      }
      if (d.kind === 'remove') {
        // like `docker rm -f`: the operator asked for it gone, running or not
        await c.remove({ force: true });
        return { ok: true, containerId: id };
      }
      if (d.kind === 'start') await ignore304(c.start());
      else await c.restart();
    } catch (err) {
      return { ok: false, error: dockerError(err), containerId: id };
    }
    return this.waitRunning(docker, id, CONTAINER_LIMITS.waitSecondsDefault);
  }

  private async create(docker: Dockerode, operationId: string, spec: CreateContainerRequest): Promise<Outcome> {
    try {
      await docker.getImage(spec.image).inspect();
    } catch (err) {
      if (statusCodeOf(err) === 404) return { ok: false, error: `image ${spec.image} is not on this machine (Kapitan never pulls: upload and load it first)`, containerId: null };
      return { ok: false, error: dockerError(err), containerId: null };
    }
    const exposed: Record<string, object> = {};
    const bindings: Record<string, { HostPort: string; HostIp?: string }[]> = {};
    for (const p of spec.ports ?? []) {
      const key = `${p.containerPort}/${p.protocol}`;
      exposed[key] = {};
      if (p.hostPort !== undefined) (bindings[key] ??= []).push({ HostPort: String(p.hostPort), ...(p.hostIp ? { HostIp: p.hostIp } : {}) });
    }
    const mounts = (spec.volumes ?? []).map((v) => ({
      Type: v.source.startsWith('/') ? ('bind' as const) : ('volume' as const),
      Source: v.source,
      Target: v.target,
      ReadOnly: v.readOnly ?? false,
    }));
    let created: Dockerode.Container;
    try {
      created = await docker.createContainer({
        Image: spec.image,
        ...(spec.name ? { name: spec.name } : {}),
        Env: Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`),
        ...(spec.command ? { Cmd: spec.command } : {}),
        Labels: { ...(spec.labels ?? {}), [OPERATION_LABEL]: operationId },
        ExposedPorts: exposed,
        HostConfig: {
          PortBindings: bindings,
          Mounts: mounts,
          RestartPolicy: { Name: spec.restartPolicy ?? 'no' },
        },
      });
    } catch (err) {
      return { ok: false, error: dockerError(err), containerId: null };
    }
    const id = created.id.toLowerCase();
    this.options.touched?.(id);
    try {
      await created.start();
    } catch (err) {
      return { ok: false, error: `created, but it did not start: ${dockerError(err)}`, containerId: id };
    }
    return this.waitRunning(docker, id, spec.waitSeconds ?? CONTAINER_LIMITS.waitSecondsDefault);
  }

  /** Running, and healthy when it has a healthcheck, within `seconds`; else why not. */
  private async waitRunning(docker: Dockerode, id: string, seconds: number): Promise<Outcome> {
    const deadline = Date.now() + seconds * 1000;
    const poll = this.options.pollMs ?? 250;
    const settle = this.options.settleMs ?? 1000;
    let last = 'not inspected';
    let runningSince: { at: number; startedAt: string; restarts: number } | null = null;
    for (;;) {
      let info: Dockerode.ContainerInspectInfo;
      try {
        info = await docker.getContainer(id).inspect();
      } catch (err) {
        return { ok: false, error: `the container went away: ${dockerError(err)}`, containerId: id };
      }
      const health = (info.State as { Health?: { Status?: string } }).Health?.Status;
      const up = info.State.Running && !info.State.Restarting;
      if (up && health === 'healthy') return { ok: true, containerId: id };
      if (up && !health) {
        const same = runningSince && runningSince.startedAt === info.State.StartedAt && runningSince.restarts === info.RestartCount;
        if (!same) runningSince = { at: Date.now(), startedAt: info.State.StartedAt, restarts: info.RestartCount };
        else if (Date.now() - runningSince!.at >= settle) return { ok: true, containerId: id };
      } else {
        runningSince = null;
      }
      if (health === 'unhealthy') return { ok: false, error: 'the container runs but its healthcheck reports unhealthy', containerId: id };
      if (['exited', 'dead'].includes(info.State.Status)) {
        const tail = info.State.Error ? `: ${info.State.Error}` : '';
        return { ok: false, error: `the container exited with code ${info.State.ExitCode}${tail}`, containerId: id };
      }
      last = health ? `${info.State.Status}, health ${health}` : info.State.Status;
      if (Date.now() >= deadline) return { ok: false, error: `not running and healthy after ${seconds} s (${last})`, containerId: id };
      await new Promise((r) => setTimeout(r, poll));
    }
  }
}

/** 304: already in the state asked for. */
async function ignore304(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (statusCodeOf(err) !== 304) throw err;
  }
}
