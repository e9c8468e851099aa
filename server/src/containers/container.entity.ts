import type { ContainerHealth, ContainerOperationKind, ContainerOperationStatus, ContainerPort, ContainerState, CreateContainerRequest } from '@kapitan/shared';
import { Column, Entity, PrimaryColumn } from 'typeorm';

/** A container of a machine's engine as its agent last reported it. Keyed by machine first: no report of one machine can touch another's rows. */
@Entity('containers')
export class ContainerEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  machineId: string;

  @PrimaryColumn({ type: 'varchar', length: 64 })
  id: string;

  @Column({ type: 'varchar', length: 36 })
  projectId: string;

  @Column({ type: 'varchar', length: 128 })
  name: string;

  @Column({ type: 'varchar', length: 255 })
  image: string;

  @Column({ type: 'varchar', length: 100, nullable: true })
  imageId: string | null;

  @Column({ type: 'varchar', length: 16 })
  state: ContainerState;

  @Column({ type: 'varchar', length: 255 })
  status: string;

  @Column({ type: 'varchar', length: 16 })
  health: ContainerHealth;

  @Column({ type: 'simple-json' })
  ports: ContainerPort[];

  @Column({ type: 'simple-json' })
  labels: Record<string, string>;

  @Column({ type: 'datetime', precision: 3 })
  createdAt: Date;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  startedAt: Date | null;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  finishedAt: Date | null;

  @Column({ type: 'int', nullable: true })
  exitCode: number | null;

  @Column({ type: 'int' })
  restartCount: number;

  /** The snapshot that last named it: at a snapshot's last part, rows of older snapshots are gone from the engine. */
  @Column({ type: 'varchar', length: 36, nullable: true })
  snapshotId: string | null;

  @Column({ type: 'datetime', precision: 3 })
  updatedAt: Date;
}

/** Whether a machine's agent reaches its Docker engine, and why not. */
@Entity('docker_hosts')
export class DockerHostEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  machineId: string;

  @Column({ type: 'varchar', length: 36 })
  projectId: string;

  @Column({ type: 'boolean' })
  available: boolean;

  @Column({ type: 'varchar', length: 2000, nullable: true })
  reason: string | null;

  @Column({ type: 'varchar', length: 64, nullable: true })
  engineVersion: string | null;

  @Column({ type: 'datetime', precision: 3 })
  updatedAt: Date;
}

/** One container action: a row before it is sent (design invariant 1), then queued → running → succeeded | failed. */
@Entity('container_operations')
export class ContainerOperationEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ type: 'varchar', length: 36 })
  projectId: string;

  @Column({ type: 'varchar', length: 36 })
  machineId: string;

  @Column({ type: 'varchar', length: 16 })
  kind: ContainerOperationKind;

  @Column({ type: 'varchar', length: 64, nullable: true })
  containerId: string | null;

  @Column({ type: 'varchar', length: 16 })
  status: ContainerOperationStatus;

  @Column({ type: 'varchar', length: 2000, nullable: true })
  error: string | null;

  @Column({ type: 'simple-json', nullable: true })
  spec: CreateContainerRequest | null;

  @Column({ type: 'varchar', length: 36, nullable: true })
  createdBy: string | null;

  @Column({ type: 'datetime', precision: 3 })
  createdAt: Date;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  startedAt: Date | null;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  finishedAt: Date | null;

  @Column({ type: 'datetime', precision: 3 })
  expiresAt: Date;
}
