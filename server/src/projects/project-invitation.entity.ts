import type { ProjectRole } from '@kapitan/shared';
import { Column, Entity, PrimaryColumn } from 'typeorm';

/** A membership waiting for its e-mail to sign up; it becomes one at that sign-up. */
@Entity('project_invitations')
export class ProjectInvitationEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ type: 'varchar', length: 36 })
  projectId: string;

  @Column({ type: 'varchar', length: 254 })
  email: string;

  @Column({ type: 'varchar', length: 16 })
  role: ProjectRole;

  @Column({ type: 'varchar', length: 36, nullable: true })
  invitedBy: string | null;

  @Column({ type: 'datetime', precision: 3 })
  createdAt: Date;

  @Column({ type: 'datetime', precision: 3 })
  expiresAt: Date;
}
