import type { ExecutionStatus, OutputStream } from '@kapitan/shared';
import { Column, Entity, PrimaryColumn } from 'typeorm';

/** Transforms MySQL BIGINT (returned as a string) to a number; sequence numbers stay far below 2^53. */
const bigintAsNumber = {
  to: (v: number | null) => v,
  from: (v: string | number | null) => (v === null ? null : Number(v)),
};

@Entity('executions')
export class ExecutionEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ type: 'varchar', length: 36 })
  runId: string;

  @Column({ type: 'varchar', length: 36 })
  projectId: string;

  @Column({ type: 'varchar', length: 36 })
  machineId: string;

  @Column({ type: 'varchar', length: 16 })
  status: ExecutionStatus;

  @Column({ type: 'text' }) // MEDIUMTEXT on MySQL: the migration decides the storage type
  script: string;

  @Column({ type: 'simple-json' })
  args: string[];

  @Column({ type: 'simple-json' })
  env: Record<string, string>;

  /** Names of the project secrets the run references; never their values. Null on rows older than secrets. */
  @Column({ type: 'simple-json', nullable: true })
  secrets: string[] | null;

  /** The stored script file the run was made from; no foreign key: the run keeps its copy when the file goes. */
  @Column({ type: 'varchar', length: 36, nullable: true })
  fileId: string | null;

  /** sha256 of the script content copied from that file. */
  @Column({ type: 'varchar', length: 64, nullable: true })
  fileSha256: string | null;

  @Column({ type: 'varchar', length: 1024, nullable: true })
  cwd: string | null;

  @Column({ type: 'int' })
  timeoutSeconds: number;

  @Column({ type: 'datetime', precision: 3 })
  expiresAt: Date;

  @Column({ type: 'varchar', length: 36, nullable: true })
  createdBy: string | null;

  @Column({ type: 'datetime', precision: 3 })
  createdAt: Date;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  dispatchedAt: Date | null;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  startedAt: Date | null;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  finishedAt: Date | null;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  cancelRequestedAt: Date | null;

  @Column({ type: 'int', nullable: true })
  exitCode: number | null;

  @Column({ type: 'varchar', length: 32, nullable: true })
  signal: string | null;

  @Column({ type: 'varchar', length: 1000, nullable: true })
  reason: string | null;

  @Column({ type: 'bigint', nullable: true, transformer: bigintAsNumber })
  lastSeq: number | null;
}

@Entity('execution_chunks')
export class ExecutionChunkEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  executionId: string;

  @PrimaryColumn({ type: 'bigint', transformer: bigintAsNumber })
  seq: number;

  @Column({ type: 'varchar', length: 8 })
  stream: OutputStream;

  @Column({ type: 'text' }) // MEDIUMTEXT on MySQL: the migration decides the storage type
  data: string;
}
