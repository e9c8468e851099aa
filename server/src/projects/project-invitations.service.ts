import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { ProjectRole } from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import { EntityManager, LessThanOrEqual, MoreThan, Repository } from 'typeorm';
import { conflict } from '../common/api-exception';
import { isUniqueViolation } from '../users/users.service';
import { ProjectMemberEntity } from './project.entity';
import { ProjectInvitationEntity } from './project-invitation.entity';

/** How long a project invitation waits for its e-mail to sign up. */
const PROJECT_INVITATION_DAYS = 30;

/**
 * Members added by an e-mail that has no account yet: the invitation waits,
 * and the sign-up of that e-mail turns it into the membership.
 */
@Injectable()
export class ProjectInvitationsService {
  constructor(@InjectRepository(ProjectInvitationEntity) private readonly invitations: Repository<ProjectInvitationEntity>) {}

  /** 409 with the same words as "already a member", so a second add tells nothing either. */
  async invite(projectId: string, email: string, role: ProjectRole, invitedBy: string): Promise<void> {
    const now = new Date();
    await this.invitations.delete({ projectId, email, expiresAt: LessThanOrEqual(now) });
    try {
      await this.invitations.insert({
        id: randomUUID(),
        projectId,
        email,
        role,
        invitedBy,
        createdAt: now,
        expiresAt: new Date(now.getTime() + PROJECT_INVITATION_DAYS * 86400_000),
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict('already a member');
      throw err;
    }
  }

  /** Inside the sign-up's transaction: every live invitation of `email` becomes a membership of `userId`. */
  async acceptFor(manager: EntityManager, userId: string, email: string): Promise<string[]> {
    const repo = manager.getRepository(ProjectInvitationEntity);
    const now = new Date();
    const pending = await repo.find({ where: { email, expiresAt: MoreThan(now) } });
    for (const inv of pending) {
      await manager.getRepository(ProjectMemberEntity).insert({ projectId: inv.projectId, userId, role: inv.role, createdAt: now });
    }
    await repo.delete({ email });
    return pending.map((p) => p.projectId);
  }
}
