import type { MetricsResolution } from '@kapitan/shared';
import { Column, Entity, PrimaryColumn, ValueTransformer } from 'typeorm';

/** MySQL hands BIGINT back as a string; the bucket time is milliseconds since the epoch, well inside a double. */
const bigintAsNumber: ValueTransformer = { to: (v: number) => v, from: (v: string | number) => Number(v) };

/** One machine's host reading: a stored sample (`raw`) or the average of a bucket. Keyed by machine first. */
@Entity('host_metrics')
export class HostMetricsEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  machineId: string;

  @PrimaryColumn({ type: 'varchar', length: 3 })
  resolution: MetricsResolution;

  /** Server time of the sample (raw), or the start of the bucket. */
  @PrimaryColumn({ type: 'bigint', transformer: bigintAsNumber })
  bucketAt: number;

  @Column({ type: 'double', nullable: true })
  cpuPercent: number | null;

  @Column({ type: 'double' })
  memoryUsedBytes: number;

  @Column({ type: 'double' })
  memoryTotalBytes: number;

  @Column({ type: 'double' })
  diskRootUsedBytes: number;

  @Column({ type: 'double' })
  diskRootTotalBytes: number;

  @Column({ type: 'double' })
  diskStateUsedBytes: number;

  @Column({ type: 'double' })
  diskStateTotalBytes: number;

  @Column({ type: 'double', nullable: true })
  netRxBytesPerSec: number | null;

  @Column({ type: 'double', nullable: true })
  netTxBytesPerSec: number | null;

  @Column({ type: 'double' })
  load1: number;

  @Column({ type: 'double' })
  load5: number;

  @Column({ type: 'double' })
  load15: number;
}

/** One container's reading, under the machine whose agent reported it. */
@Entity('container_metrics')
export class ContainerMetricsEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  machineId: string;

  @PrimaryColumn({ type: 'varchar', length: 3 })
  resolution: MetricsResolution;

  @PrimaryColumn({ type: 'bigint', transformer: bigintAsNumber })
  bucketAt: number;

  @PrimaryColumn({ type: 'varchar', length: 64 })
  containerId: string;

  @Column({ type: 'double', nullable: true })
  cpuPercent: number | null;

  @Column({ type: 'double' })
  memoryUsedBytes: number;

  @Column({ type: 'double', nullable: true })
  memoryLimitBytes: number | null;
}
