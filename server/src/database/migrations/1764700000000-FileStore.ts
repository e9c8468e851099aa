import { MigrationInterface, QueryRunner, Table } from 'typeorm';
import { col } from '../migration-helpers';

export class FileStore1764700000000 implements MigrationInterface {
  name = 'FileStore1764700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'files',
        columns: [
          col.id(),
          col.ref('projectId'),
          col.str('name', 255),
          col.str('kind', 16),
          col.bigint('size'),
          col.str('sha256', 64),
          col.ref('uploadedBy', true),
          col.date('createdAt'),
        ],
        indices: [
          { name: 'IDX_files_project', columnNames: ['projectId', 'createdAt'] },
          // Deleting a row asks whether any other row still needs the blob.
          { name: 'IDX_files_sha256', columnNames: ['sha256'] },
        ],
        foreignKeys: [{ columnNames: ['projectId'], referencedTableName: 'projects', referencedColumnNames: ['id'], onDelete: 'CASCADE' }],
      }),
    );
    await q.createTable(
      new Table({
        name: 'file_uploads',
        columns: [
          col.id(),
          col.ref('projectId'),
          col.ref('userId'),
          col.str('name', 255),
          col.str('kind', 16),
          col.bigint('size'),
          col.bigint('received'),
          col.str('sha256', 64, true),
          col.date('lockedUntil', true),
          col.date('createdAt'),
          col.date('expiresAt'),
        ],
        indices: [{ name: 'IDX_file_uploads_expires', columnNames: ['expiresAt'] }],
        foreignKeys: [
          { columnNames: ['projectId'], referencedTableName: 'projects', referencedColumnNames: ['id'], onDelete: 'CASCADE' },
          { columnNames: ['userId'], referencedTableName: 'users', referencedColumnNames: ['id'], onDelete: 'CASCADE' },
        ],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('file_uploads');
    await q.dropTable('files');
  }
}
