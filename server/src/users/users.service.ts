import { Injectable } from '@nestjs/common';
import { isUniqueViolation } from '../common/unique-violation';
import { InjectRepository } from '@nestjs/typeorm';
import { User } from '@kapitan/shared';
import { EntityManager, In, Repository } from 'typeorm';
import { conflict } from '../common/api-exception';
import { DomainEventsService } from '../common/events.service';
import { UserEntity } from './user.entity';

export function toUserDto(u: UserEntity): User {
  return { id: u.id, email: u.email, name: u.name, isAdmin: u.isAdmin, createdAt: u.createdAt.toISOString() };
}

@Injectable()
export class UsersService {
  constructor(
    @InjectRepository(UserEntity) private readonly users: Repository<UserEntity>,
    private readonly events: DomainEventsService,
  ) {}

  /**
   * Creates the account inside the caller's transaction (the sign-up, which
   * also claims the first-admin row and uses up an invitation there, so all
   * of it happens or none). 409 when the address is taken.
   */
  async createIn(manager: EntityManager, input: { id: string; email: string; name?: string; passwordHash: string; isAdmin: boolean }): Promise<UserEntity> {
    const repo = manager.getRepository(UserEntity);
    if (await repo.exists({ where: { email: input.email } })) throw conflict('an account with this email exists');
    const now = new Date();
    const user = repo.create({
      id: input.id,
      email: input.email,
      name: input.name ?? null,
      passwordHash: input.passwordHash,
      isAdmin: input.isAdmin,
      createdAt: now,
      updatedAt: now,
    });
    try {
      return await repo.save(user);
    } catch (err) {
      // Two sign-ups racing for one address: the unique index decides.
      if (isUniqueViolation(err)) throw conflict('an account with this email exists');
      throw err;
    }
  }

  findByEmail(email: string): Promise<UserEntity | null> {
    return this.users.findOne({ where: { email: email.toLowerCase() } });
  }

  findById(id: string): Promise<UserEntity | null> {
    return this.users.findOne({ where: { id } });
  }

  findByIds(ids: string[]): Promise<UserEntity[]> {
    return ids.length ? this.users.find({ where: { id: In(ids) } }) : Promise.resolve([]);
  }

  /** Its sessions go with it (FK cascade); open dashboard sockets are dropped through the event. */
  async delete(id: string): Promise<void> {
    await this.users.delete({ id });
    this.events.publish('user.deleted', { userId: id });
  }
}

export { isUniqueViolation };
