import type { AuditAction, AuditActorType } from '@kapitan/shared';
import { Column, Entity, PrimaryGeneratedColumn } from 'typeorm';

/**
 * One recorded action. Insert-only in code: AuditService is the only holder
 * of this repository and it never updates a row; the only delete is the
 * age-based retention prune (KAPITAN_AUDIT_RETENTION_DAYS), off by default.
 */
@Entity('audit_events')
export class AuditEventEntity {
  @PrimaryGeneratedColumn({ type: 'integer' })
  seq: number;

  @Column({ type: 'datetime', precision: 3 })
  at: Date;

  @Column({ type: 'varchar', length: 64 })
  action: AuditAction;

  @Column({ type: 'varchar', length: 16 })
  actorType: AuditActorType;

  @Column({ type: 'varchar', length: 36, nullable: true })
  actorUserId: string | null;

  /** As it was at the time: the log still names a user who later changed address or was deleted. */
  @Column({ type: 'varchar', length: 320, nullable: true })
  actorEmail: string | null;

  @Column({ type: 'varchar', length: 36, nullable: true })
  actorTokenId: string | null;

  @Column({ type: 'varchar', length: 100, nullable: true })
  actorTokenName: string | null;

  @Column({ type: 'varchar', length: 36, nullable: true })
  actorMachineId: string | null;

  @Column({ type: 'varchar', length: 36, nullable: true })
  projectId: string | null;

  @Column({ type: 'varchar', length: 36, nullable: true })
  machineId: string | null;

  @Column({ type: 'varchar', length: 64, nullable: true })
  address: string | null;

  @Column({ type: 'varchar', length: 64, nullable: true })
  requestId: string | null;

  /** AuditDetailsSchema, as JSON. */
  @Column({ type: 'text' })
  details: string;
}
