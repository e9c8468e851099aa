import type { DeliveryKind, DeliveryStatus } from '@kapitan/shared';
import { Column, Entity, PrimaryColumn } from 'typeorm';

/** MySQL returns BIGINT as a string; file sizes stay far below 2^53. */
const bigintAsNumber = {
  to: (v: number) => v,
  from: (v: string | number) => Number(v),
};

/** A deploy or a distribution of one stored file to the machines its targets matched. */
@Entity('deliveries')
export class DeliveryEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ type: 'varchar', length: 36 })
  projectId: string;

  @Column({ type: 'varchar', length: 16 })
  kind: DeliveryKind;

  /** The file sent; the files feature refuses to delete it while a machine's part is pending. */
  @Column({ type: 'varchar', length: 36 })
  fileId: string;

  @Column({ type: 'varchar', length: 255 })
  fileName: string;

  @Column({ type: 'varchar', length: 64 })
  sha256: string;

  @Column({ type: 'bigint', transformer: bigintAsNumber })
  size: number;

  /** Deploys only. */
  @Column({ type: 'varchar', length: 1024, nullable: true })
  path: string | null;

  @Column({ type: 'int', nullable: true })
  mode: number | null;

  @Column({ type: 'varchar', length: 65, nullable: true })
  owner: string | null;

  @Column({ type: 'varchar', length: 36, nullable: true })
  createdBy: string | null;

  @Column({ type: 'datetime', precision: 3 })
  createdAt: Date;

  @Column({ type: 'datetime', precision: 3 })
  expiresAt: Date;
}

/** One machine's part of a delivery. */
@Entity('delivery_machines')
export class DeliveryMachineEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  deliveryId: string;

  @PrimaryColumn({ type: 'varchar', length: 36 })
  machineId: string;

  @Column({ type: 'varchar', length: 36 })
  projectId: string;

  @Column({ type: 'varchar', length: 16 })
  status: DeliveryStatus;

  @Column({ type: 'bigint', transformer: bigintAsNumber })
  receivedBytes: number;

  @Column({ type: 'varchar', length: 1000, nullable: true })
  reason: string | null;

  @Column({ type: 'varchar', length: 200, nullable: true })
  imageId: string | null;

  /** What the agent said moved over the network for this part (DeliveryMachine.movedBytes). */
  @Column({ type: 'bigint', nullable: true, transformer: { to: (v: number | null) => v, from: (v: string | number | null) => (v === null ? null : Number(v)) } })
  movedBytes: number | null;

  /** A distribution sent by layers: how many its engine had, of how many. */
  @Column({ type: 'int', nullable: true })
  layersPresent: number | null;

  @Column({ type: 'int', nullable: true })
  layersTotal: number | null;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  dispatchedAt: Date | null;

  @Column({ type: 'datetime', precision: 3 })
  updatedAt: Date;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  finishedAt: Date | null;
}
