import { Injectable } from '@nestjs/common';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { User } from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import { DataSource, In, Repository } from 'typeorm';
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
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly events: DomainEventsService,
  ) {}

  /** The first account of a fresh install becomes the instance admin. */
  async create(input: { email: string; name?: string; passwordHash: string }): Promise<UserEntity> {
    return this.dataSource.transaction(async (tx) => {
      const repo = tx.getRepository(UserEntity);
      if (await repo.exists({ where: { email: input.email } })) throw conflict('an account with this email exists');
      const isFirst = (await repo.count()) === 0;
      const now = new Date();
      const user = repo.create({
        id: randomUUID(),
        email: input.email,
        name: input.name ?? null,
        passwordHash: input.passwordHash,
        isAdmin: isFirst,
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
    });
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

export function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; driverError?: { code?: string } };
  const code = e?.driverError?.code ?? e?.code;
  return code === 'ER_DUP_ENTRY' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}
