import { MigrationInterface, QueryRunner, Table } from 'typeorm';
import { col } from '../migration-helpers';

export class ApiTokens1764619200000 implements MigrationInterface {
  name = 'ApiTokens1764619200000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'api_tokens',
        columns: [
          col.id(),
          col.ref('userId'),
          col.ref('projectId'),
          col.str('name', 100),
          col.str('role', 16),
          col.str('secretHash', 64),
          col.date('createdAt'),
          col.date('lastUsedAt', true),
          col.date('expiresAt', true),
        ],
        // The list page reads a user's tokens; authentication reads by primary key.
        indices: [{ name: 'IDX_api_tokens_user', columnNames: ['userId'] }],
        foreignKeys: [
          { columnNames: ['userId'], referencedTableName: 'users', referencedColumnNames: ['id'], onDelete: 'CASCADE' },
          { columnNames: ['projectId'], referencedTableName: 'projects', referencedColumnNames: ['id'], onDelete: 'CASCADE' },
        ],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('api_tokens');
  }
}
