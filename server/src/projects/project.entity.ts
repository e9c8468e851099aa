import type { ProjectRole } from '@kapitan/shared';
import { Column, Entity, PrimaryColumn } from 'typeorm';

@Entity('projects')
export class ProjectEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ type: 'varchar', length: 100 })
  name: string;

  @Column({ type: 'text' })
  description: string;

  @Column({ type: 'datetime', precision: 3 })
  createdAt: Date;

  @Column({ type: 'datetime', precision: 3 })
  updatedAt: Date;
}

@Entity('project_members')
export class ProjectMemberEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  projectId: string;

  @PrimaryColumn({ type: 'varchar', length: 36 })
  userId: string;

  @Column({ type: 'varchar', length: 16 })
  role: ProjectRole;

  @Column({ type: 'datetime', precision: 3 })
  createdAt: Date;
}
