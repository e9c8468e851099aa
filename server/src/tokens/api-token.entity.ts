import type { ProjectRole } from '@kapitan/shared';
import { Column, Entity, PrimaryColumn } from 'typeorm';

/**
 * An operator's API token. Only the sha256 of its secret is kept; the value
 * was shown once. Deleting the user or the project deletes its tokens.
 */
@Entity('api_tokens')
export class ApiTokenEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ type: 'varchar', length: 36 })
  userId: string;

  @Column({ type: 'varchar', length: 36 })
  projectId: string;

  @Column({ type: 'varchar', length: 100 })
  name: string;

  /** The most it may do; the owner's current membership can lower it further. */
  @Column({ type: 'varchar', length: 16 })
  role: ProjectRole;

  @Column({ type: 'varchar', length: 64 })
  secretHash: string;

  @Column({ type: 'datetime', precision: 3 })
  createdAt: Date;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  lastUsedAt: Date | null;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  expiresAt: Date | null;
}
