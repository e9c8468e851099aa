import { MigrationInterface, QueryRunner, Table } from 'typeorm';
import { col } from '../migration-helpers';

export class ProjectSecrets1764616800000 implements MigrationInterface {
  name = 'ProjectSecrets1764616800000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'project_secrets',
        columns: [
          { ...col.ref('projectId'), isPrimary: true },
          { ...col.str('name', 128), isPrimary: true },
          col.str('keyId', 32),
          col.str('nonce', 24),
          // base64 of a 32 KiB value and its tag is ~44 K characters: fits TEXT, MEDIUMTEXT leaves room.
          col.mediumText('ciphertext'),
          col.ref('createdBy', true),
          col.date('createdAt'),
          col.ref('updatedBy', true),
          col.date('updatedAt'),
        ],
        // A row per key makes "re-seal everything under the new key" one indexed scan.
        indices: [{ name: 'IDX_project_secrets_key', columnNames: ['keyId'] }],
        foreignKeys: [{ columnNames: ['projectId'], referencedTableName: 'projects', referencedColumnNames: ['id'], onDelete: 'CASCADE' }],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('project_secrets');
  }
}
