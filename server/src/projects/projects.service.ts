import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import {
  AddMemberRequest,
  AddMemberResponse,
  CreateProjectRequest,
  Member,
  Project,
  ProjectRole,
  ROLE_RANK,
  UpdateMemberRequest,
  UpdateProjectRequest,
} from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import { DataSource, In, Repository } from 'typeorm';
import { conflict, forbidden, notFound } from '../common/api-exception';
import { DomainEventsService } from '../common/events.service';
import { currentApiToken, noteRequestProject } from '../common/request-principal';
import { isUniqueViolation, UsersService } from '../users/users.service';
import { ProjectEntity, ProjectMemberEntity } from './project.entity';
import { ProjectInvitationsService } from './project-invitations.service';

function toProjectDto(p: ProjectEntity, role: ProjectRole): Project {
  return {
    id: p.id,
    name: p.name,
    description: p.description,
    role,
    createdAt: p.createdAt.toISOString(),
    updatedAt: p.updatedAt.toISOString(),
  };
}

@Injectable()
export class ProjectsService {
  constructor(
    @InjectRepository(ProjectEntity) private readonly projects: Repository<ProjectEntity>,
    @InjectRepository(ProjectMemberEntity) private readonly members: Repository<ProjectMemberEntity>,
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly users: UsersService,
    private readonly events: DomainEventsService,
    private readonly projectInvitations: ProjectInvitationsService,
  ) {}

  /**
   * The caller's role, or 404 when they are not a member (existence is not
   * leaked), or 403 when the role is below `min`. Every feature asks here.
   */
  requireRole(userId: string, projectId: string, min: ProjectRole): Promise<ProjectRole> {
    return this.requireRoleIn(this.members, userId, projectId, min);
  }

  private async requireRoleIn(
    members: Repository<ProjectMemberEntity>,
    userId: string,
    projectId: string,
    min: ProjectRole,
  ): Promise<ProjectRole> {
    const m = await members.findOne({ where: { projectId, userId } });
    const role = m ? this.effectiveRole(userId, projectId, m.role) : null;
    if (!role) throw notFound('project');
    if (ROLE_RANK[role] < ROLE_RANK[min]) throw forbidden(`this needs the ${min} role in the project; you are ${role}`);
    noteRequestProject(projectId);
    return role;
  }

  /** Like requireRole, but answers instead of throwing (socket subscriptions). */
  async roleOf(userId: string, projectId: string): Promise<ProjectRole | null> {
    const m = await this.members.findOne({ where: { projectId, userId } });
    return m ? this.effectiveRole(userId, projectId, m.role) : null;
  }

  /**
   * What `userId` may do in a project, given their membership role, when the
   * current request came with an API token (see request-principal.ts):
   * outside the token's project nothing (null, so 404 as for a non-member);
   * inside it the lower of the token's role and the membership. The
   * membership is read fresh every time, so demoting or removing the user
   * narrows their tokens at once. Done here, in the one check every feature
   * already calls, rather than by threading the token through every
   * service signature, so no feature can forget it.
   */
  private effectiveRole(userId: string, projectId: string, memberRole: ProjectRole): ProjectRole | null {
    const token = currentApiToken();
    // Only the token holder's own checks are narrowed; a service asking about someone else is unaffected.
    if (!token || token.userId !== userId) return memberRole;
    if (token.projectId !== projectId) return null;
    return ROLE_RANK[token.role] < ROLE_RANK[memberRole] ? token.role : memberRole;
  }

  async list(userId: string): Promise<Project[]> {
    const memberships = await this.members.find({ where: { userId } });
    if (!memberships.length) return [];
    const roles = new Map(
      memberships.flatMap((m) => {
        const role = this.effectiveRole(userId, m.projectId, m.role);
        return role ? [[m.projectId, role] as const] : [];
      }),
    );
    if (!roles.size) return [];
    const projects = await this.projects.find({ where: { id: In([...roles.keys()]) }, order: { createdAt: 'DESC' } });
    return projects.map((p) => toProjectDto(p, roles.get(p.id)!));
  }

  async create(userId: string, body: CreateProjectRequest): Promise<Project> {
    const now = new Date();
    const project = this.projects.create({
      id: randomUUID(),
      name: body.name,
      description: body.description ?? '',
      createdAt: now,
      updatedAt: now,
    });
    await this.dataSource.transaction(async (tx) => {
      await tx.getRepository(ProjectEntity).insert(project);
      await tx.getRepository(ProjectMemberEntity).insert({ projectId: project.id, userId, role: 'owner', createdAt: now });
    });
    return toProjectDto(project, 'owner');
  }

  async get(userId: string, projectId: string): Promise<Project> {
    const role = await this.requireRole(userId, projectId, 'viewer');
    const p = await this.projects.findOne({ where: { id: projectId } });
    if (!p) throw notFound('project');
    return toProjectDto(p, role);
  }

  async update(userId: string, projectId: string, body: UpdateProjectRequest): Promise<Project> {
    const role = await this.requireRole(userId, projectId, 'owner');
    const p = await this.projects.findOne({ where: { id: projectId } });
    if (!p) throw notFound('project');
    if (body.name !== undefined) p.name = body.name;
    if (body.description !== undefined) p.description = body.description;
    p.updatedAt = new Date();
    await this.projects.save(p);
    return toProjectDto(p, role);
  }

  async delete(userId: string, projectId: string): Promise<void> {
    await this.requireRole(userId, projectId, 'owner');
    await this.projects.delete({ id: projectId });
    this.events.publish('project.deleted', { projectId });
  }

  async listMembers(userId: string, projectId: string): Promise<Member[]> {
    await this.requireRole(userId, projectId, 'viewer');
    const rows = await this.members.find({ where: { projectId }, order: { createdAt: 'ASC' } });
    const users = new Map((await this.users.findByIds(rows.map((r) => r.userId))).map((u) => [u.id, u]));
    return rows.flatMap((r) => {
      const u = users.get(r.userId);
      return u ? [{ userId: u.id, email: u.email, name: u.name, role: r.role, createdAt: r.createdAt.toISOString() }] : [];
    });
  }

  /**
   * Adds the account with this e-mail, or, when there is none, leaves a
   * project invitation that its sign-up accepts. Both answer alike, so the
   * answer does not tell whether the e-mail has an account.
   */
  async addMember(userId: string, projectId: string, body: AddMemberRequest): Promise<AddMemberResponse> {
    await this.requireRole(userId, projectId, 'owner');
    const user = await this.users.findByEmail(body.email);
    if (!user) {
      await this.projectInvitations.invite(projectId, body.email, body.role, userId);
      return { email: body.email, role: body.role };
    }
    if (await this.members.exists({ where: { projectId, userId: user.id } })) throw conflict('already a member');
    const row = this.members.create({ projectId, userId: user.id, role: body.role, createdAt: new Date() });
    try {
      await this.members.insert(row);
    } catch (err) {
      // Two owners adding the same person at once: the primary key decides.
      if (isUniqueViolation(err)) throw conflict('already a member');
      throw err;
    }
    this.events.publish('membership.changed', { projectId, userId: user.id });
    return { email: body.email, role: row.role };
  }

  async updateMember(userId: string, projectId: string, memberId: string, body: UpdateMemberRequest): Promise<Member> {
    const row = await this.withMembershipLock(projectId, async (members) => {
      await this.requireRoleIn(members, userId, projectId, 'owner');
      const row = await members.findOne({ where: { projectId, userId: memberId } });
      if (!row) throw notFound('member');
      if (row.role === 'owner' && body.role !== 'owner') await this.assertNotLastOwner(projectId, members);
      row.role = body.role;
      await members.update({ projectId, userId: memberId }, { role: body.role });
      return row;
    });
    this.events.publish('membership.changed', { projectId, userId: memberId });
    const u = await this.users.findById(memberId);
    return { userId: memberId, email: u?.email ?? '', name: u?.name ?? null, role: row.role, createdAt: row.createdAt.toISOString() };
  }

  /** Owners remove anyone; any member may remove themselves (leave). */
  async removeMember(userId: string, projectId: string, memberId: string): Promise<void> {
    await this.withMembershipLock(projectId, async (members) => {
      await this.requireRoleIn(members, userId, projectId, memberId === userId ? 'viewer' : 'owner');
      const row = await members.findOne({ where: { projectId, userId: memberId } });
      if (!row) throw notFound('member');
      if (row.role === 'owner') await this.assertNotLastOwner(projectId, members);
      await members.delete({ projectId, userId: memberId });
    });
    this.events.publish('membership.changed', { projectId, userId: memberId });
  }

  /**
   * Changes to one project's members take turns. The check "is this the last
   * owner?" and the change it guards must be one step: otherwise two owners
   * demoting each other at the same moment both see two owners and leave
   * none. The transaction first writes the project row (a no-op write), which
   * on MySQL holds that row's lock until commit, so a second change of the
   * same project waits and then sees the first one's result. SQLite has a
   * single writer anyway. The caller's role is checked inside, too, so a
   * member demoted a moment ago cannot still act as an owner.
   */
  private withMembershipLock<T>(projectId: string, work: (members: Repository<ProjectMemberEntity>) => Promise<T>): Promise<T> {
    return this.dataSource.transaction(async (tx) => {
      await tx
        .createQueryBuilder()
        .update(ProjectEntity)
        .set({ updatedAt: () => 'updatedAt' })
        .where('id = :projectId', { projectId })
        .execute();
      return work(tx.getRepository(ProjectMemberEntity));
    });
  }

  private async assertNotLastOwner(projectId: string, members: Repository<ProjectMemberEntity>): Promise<void> {
    const owners = await members.count({ where: { projectId, role: 'owner' } });
    if (owners <= 1) throw conflict('a project keeps at least one owner');
  }
}
