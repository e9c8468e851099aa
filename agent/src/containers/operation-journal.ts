/**
 * Which container operations this agent has applied, across restarts:
 * delivery is at least once, so a repeated `container-operation:dispatch`
 * must not stop, remove or create a second time. Each id is written
 * (`applying`) before Docker is asked anything; its result once known. The
 * last OPERATIONS_KEPT ids are kept.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { ContainerOperationFinishedSchema, type ContainerOperationFinished } from '@kapitan/shared';
import { silentLogger, type Logger } from '../logger';
import { ensurePrivateDir, writeFileAtomic } from '../state';

export const OPERATIONS_FILE = 'container-operations.json';
export const OPERATIONS_KEPT = 2000;

const RecordSchema = z.object({
  operationId: z.string().min(1),
  startedAt: z.string(),
  /** Null while applying: a record left so by a crash was interrupted, and is never applied again. */
  result: ContainerOperationFinishedSchema.nullable(),
});
export type OperationRecord = z.infer<typeof RecordSchema>;
const FileSchema = z.object({ version: z.literal(1), operations: z.array(RecordSchema) });

export interface OperationJournal {
  get(operationId: string): OperationRecord | undefined;
  /** Durable when this returns. */
  begin(operationId: string, startedAt: string): void;
  finish(result: ContainerOperationFinished): void;
  /** Records a previous process left without a result. */
  interrupted(): OperationRecord[];
}

export class MemoryOperationJournal implements OperationJournal {
  protected readonly records = new Map<string, OperationRecord>();

  get(operationId: string): OperationRecord | undefined {
    return this.records.get(operationId);
  }
  begin(operationId: string, startedAt: string): void {
    this.records.set(operationId, { operationId, startedAt, result: null });
    this.trim();
    this.persist();
  }
  finish(result: ContainerOperationFinished): void {
    const r = this.records.get(result.operationId);
    this.records.set(result.operationId, { operationId: result.operationId, startedAt: r?.startedAt ?? result.finishedAt, result });
    this.persist();
  }
  interrupted(): OperationRecord[] {
    return [...this.records.values()].filter((r) => r.result === null);
  }
  protected persist(): void {}
  private trim(): void {
    while (this.records.size > OPERATIONS_KEPT) this.records.delete(this.records.keys().next().value as string);
  }
}

export class FileOperationJournal extends MemoryOperationJournal {
  private readonly file: string;

  constructor(stateDir: string, logger: Logger = silentLogger) {
    super();
    ensurePrivateDir(stateDir);
    this.file = path.join(stateDir, OPERATIONS_FILE);
    let raw: string | null = null;
    try {
      raw = fs.readFileSync(this.file, 'utf8');
    } catch {
      // first run
    }
    if (raw !== null) {
      const parsed = (() => {
        try {
          return FileSchema.safeParse(JSON.parse(raw));
        } catch {
          return null;
        }
      })();
      if (parsed?.success) for (const r of parsed.data.operations) this.records.set(r.operationId, r);
      // Unreadable: forgetting applied ids could apply one twice, so say so loudly.
      else logger.error('the container operations journal is unreadable; repeated operations may be applied again', { file: this.file });
    }
  }

  protected override persist(): void {
    writeFileAtomic(this.file, JSON.stringify({ version: 1, operations: [...this.records.values()] }) + '\n', 0o600);
  }
}
