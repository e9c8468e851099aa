import type { EnrolmentTokenPurpose, Labels, MachineFacts, MachineStatus, ReportedPolicy } from '@kapitan/shared';
import { Column, Entity, PrimaryColumn } from 'typeorm';

@Entity('enrolment_tokens')
export class EnrolmentTokenEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ type: 'varchar', length: 36 })
  projectId: string;

  /** sha256 of the secret part: the token is 256 random bits, so a fast hash is enough. */
  @Column({ type: 'varchar', length: 64 })
  secretHash: string;

  @Column({ type: 'varchar', length: 16 })
  prefix: string;

  @Column({ type: 'simple-json' })
  labels: Labels;

  /** The enrolling agent may add labels the token does not set. */
  @Column({ type: 'boolean', default: false })
  allowAgentLabels: boolean;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  expiresAt: Date | null;

  @Column({ type: 'int', nullable: true })
  maxUses: number | null;

  @Column({ type: 'int', default: 0 })
  uses: number;

  /** Made by hand, for a downloaded bundle, or for a one-line install: the token list tells them apart. */
  @Column({ type: 'varchar', length: 16, default: 'manual' })
  purpose: EnrolmentTokenPurpose;

  @Column({ type: 'varchar', length: 36, nullable: true })
  createdBy: string | null;

  @Column({ type: 'datetime', precision: 3 })
  createdAt: Date;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  revokedAt: Date | null;
}

@Entity('machines')
export class MachineEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ type: 'varchar', length: 36 })
  projectId: string;

  @Column({ type: 'varchar', length: 255 })
  hostname: string;

  @Column({ type: 'simple-json' })
  labels: Labels;

  @Column({ type: 'simple-json', nullable: true })
  facts: MachineFacts | null;

  /** The client policy the agent reported at its last hello; null until one reported it (older agents never do). */
  @Column({ type: 'simple-json', nullable: true })
  policy: ReportedPolicy | null;

  /** sha256 of the credential's secret; null once revoked. */
  @Column({ type: 'varchar', length: 64, nullable: true })
  credentialHash: string | null;

  @Column({ type: 'varchar', length: 36, nullable: true })
  enrolmentTokenId: string | null;

  @Column({ type: 'varchar', length: 16, default: 'offline' })
  status: MachineStatus;

  /** The socket that holds the machine now: a late disconnect of an older socket must not mark it offline. */
  @Column({ type: 'varchar', length: 64, nullable: true })
  connectionId: string | null;

  @Column({ type: 'varchar', length: 64, nullable: true })
  nodeId: string | null;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  connectedAt: Date | null;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  lastSeenAt: Date | null;

  @Column({ type: 'datetime', precision: 3 })
  createdAt: Date;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  revokedAt: Date | null;
}
