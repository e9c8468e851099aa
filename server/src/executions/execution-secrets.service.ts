import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { ExecutionDispatch, maskSecrets, OutputChunk } from '@kapitan/shared';
import { In, Repository } from 'typeorm';
import { ApiException } from '../common/api-exception';
import { TickBatcher } from '../common/tick-batcher';
import { ResolvedSecrets, SecretsService } from '../secrets/secrets.service';
import { ExecutionEntity } from './execution.entity';
import { toDispatch } from './execution.mapper';

/** A dispatch, or why the execution must fail instead of running without a secret it asked for. */
export type BuiltDispatch = { dispatch: ExecutionDispatch } | { refused: string };

/**
 * Masks of executions seen on this node, so the output path reads nothing
 * per chunk. Bounded: the oldest are dropped first, and a dropped one is
 * read again at its next output.
 */
const MASK_CACHE_MAX = 10_000;

/**
 * The secrets side of a run: the values go into each dispatch (resolved
 * then, never stored with the execution), and this node masks the output of
 * such runs again before forwarding and storing it, in case an agent did
 * not (one that predates masking, or a bug in its masker). A value sent in
 * a form the masks do not cover is beyond both.
 */
@Injectable()
export class ExecutionSecretsService {
  private readonly logger = new Logger(ExecutionSecretsService.name);
  /** executionId → the values to mask in its output; an empty list for runs without secrets. */
  private readonly masks = new Map<string, string[]>();

  constructor(
    @InjectRepository(ExecutionEntity) private readonly executions: Repository<ExecutionEntity>,
    private readonly secrets: SecretsService,
  ) {}

  /** For a run being created: the values now, or a 400 naming `secrets` for a name the project lacks. */
  resolveForCreate(projectId: string, names: string[] | undefined): Promise<ResolvedSecrets> {
    return this.secrets.resolve(projectId, names ?? [], 'secrets');
  }

  /** The dispatch of `e` with the values already resolved (a run just created). */
  withResolved(e: ExecutionEntity, resolved: ResolvedSecrets): ExecutionDispatch {
    this.remember(e.id, resolved.masks);
    return toDispatch(e, resolved);
  }

  /**
   * The dispatch of `e`, its secrets resolved now: a secret rotated since
   * the run was created gives the new value. A secret deleted meanwhile (or
   * one this server can no longer open) refuses the dispatch: the run fails
   * with that reason rather than running without a value it relies on.
   */
  async build(e: ExecutionEntity): Promise<BuiltDispatch> {
    if (!e.secrets?.length) {
      this.remember(e.id, []);
      return { dispatch: toDispatch(e) };
    }
    try {
      const resolved = await this.secrets.resolve(e.projectId, e.secrets, 'secrets');
      this.remember(e.id, resolved.masks);
      return { dispatch: toDispatch(e, resolved) };
    } catch (err) {
      if (!(err instanceof ApiException)) throw err; // the database: the caller retries at the next hello
      this.logger.warn({ executionId: e.id, projectId: e.projectId, reason: err.message }, 'a run references a secret that is gone or unreadable; failing it');
      return { refused: `not started: ${err.message} (the run references it; it was deleted or cannot be read)`.slice(0, 1000) };
    }
  }

  /**
   * `chunks` with every secret of the execution masked, chunk by chunk (a
   * secret cut across two chunks is the agent's to catch: its masker spans
   * them). The same array when the execution has none.
   */
  async mask(executionId: string, chunks: OutputChunk[]): Promise<OutputChunk[]> {
    const masks = this.masks.get(executionId) ?? (await this.load(executionId));
    if (!masks.length) return chunks;
    return chunks.map((c) => ({ ...c, data: maskSecrets(c.data, masks) }));
  }

  /**
   * What `mask` would read for an execution, known from a row already read
   * (a hello's): a run without secrets has nothing to mask, so its first
   * output after a reconnect costs no read. One with secrets is left to
   * `mask`, which resolves them.
   */
  prime(e: Pick<ExecutionEntity, 'id' | 'secrets'>): void {
    if (!e.secrets?.length && !this.masks.has(e.id)) this.remember(e.id, []);
  }

  /** The execution is over: nothing more to mask on this node. */
  forget(executionId: string): void {
    this.masks.delete(executionId);
  }

  /** After a restart every running execution's first output asks at once (a reconnect storm): one query per turn. */
  private readonly secretNames = new TickBatcher<string, Pick<ExecutionEntity, 'id' | 'projectId' | 'secrets'>>(async (ids) => {
    const rows = await this.executions.find({ where: { id: In(ids) }, select: ['id', 'projectId', 'secrets'] });
    return new Map(rows.map((e) => [e.id, e]));
  });

  private async load(executionId: string): Promise<string[]> {
    const e = await this.secretNames.get(executionId);
    const names = e?.secrets ?? [];
    let masks: string[] = [];
    if (e && names.length) {
      // Each on its own: one secret deleted mid-run must not stop the others from being masked.
      for (const name of names) {
        try {
          masks.push(...(await this.secrets.resolve(e.projectId, [name], 'secrets')).masks);
        } catch (err) {
          if (!(err instanceof ApiException)) throw err;
          this.logger.warn({ executionId, secret: name }, 'cannot mask a secret of this run: it is gone or unreadable; the agent masked it');
        }
      }
      masks = [...new Set(masks)];
    }
    this.remember(executionId, masks);
    return masks;
  }

  private remember(executionId: string, masks: string[]): void {
    this.masks.delete(executionId);
    this.masks.set(executionId, masks);
    if (this.masks.size > MASK_CACHE_MAX) this.masks.delete(this.masks.keys().next().value!);
  }
}
