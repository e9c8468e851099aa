import { MigrationInterface, QueryRunner, Table } from 'typeorm';
import { col } from '../migration-helpers';

export class Foundation1764079200000 implements MigrationInterface {
  name = 'Foundation1764079200000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'users',
        columns: [
          col.id(),
          col.str('email', 254),
          col.str('name', 100, true),
          col.str('passwordHash', 255),
          col.bool('isAdmin'),
          col.date('createdAt'),
          col.date('updatedAt'),
        ],
        uniques: [{ name: 'UQ_users_email', columnNames: ['email'] }],
      }),
    );
    await q.createTable(
      new Table({
        name: 'sessions',
        columns: [col.id(), col.ref('userId'), col.date('createdAt'), col.date('expiresAt')],
        indices: [{ name: 'IDX_sessions_user', columnNames: ['userId'] }],
        foreignKeys: [{ columnNames: ['userId'], referencedTableName: 'users', referencedColumnNames: ['id'], onDelete: 'CASCADE' }],
      }),
    );
    await q.createTable(
      new Table({
        name: 'login_failures',
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          col.str('key', 300),
          col.date('at'),
        ],
        indices: [{ name: 'IDX_login_failures_key_at', columnNames: ['key', 'at'] }],
      }),
    );
    await q.createTable(
      new Table({
        name: 'projects',
        columns: [col.id(), col.str('name', 100), col.text('description'), col.date('createdAt'), col.date('updatedAt')],
      }),
    );
    await q.createTable(
      new Table({
        name: 'project_members',
        columns: [col.ref('projectId'), col.ref('userId'), col.str('role', 16), col.date('createdAt')],
        uniques: [],
        indices: [{ name: 'IDX_project_members_user', columnNames: ['userId'] }],
        foreignKeys: [
          { columnNames: ['projectId'], referencedTableName: 'projects', referencedColumnNames: ['id'], onDelete: 'CASCADE' },
          { columnNames: ['userId'], referencedTableName: 'users', referencedColumnNames: ['id'], onDelete: 'CASCADE' },
        ],
      }),
    );
    await q.createPrimaryKey('project_members', ['projectId', 'userId']);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('project_members');
    await q.dropTable('projects');
    await q.dropTable('login_failures');
    await q.dropTable('sessions');
    await q.dropTable('users');
  }
}
