import { MigrationInterface, QueryRunner, Table } from 'typeorm';
import { col } from '../migration-helpers';

const cascade = (column: string, table: string) => ({ columnNames: [column], referencedTableName: table, referencedColumnNames: ['id'], onDelete: 'CASCADE' });

export class Containers1764810000000 implements MigrationInterface {
  name = 'Containers1764810000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'containers',
        columns: [
          { ...col.ref('machineId'), isPrimary: true },
          { ...col.str('id', 64), isPrimary: true },
          col.ref('projectId'),
          col.str('name', 128),
          col.str('image', 255),
          col.str('imageId', 100, true),
          col.str('state', 16),
          col.str('status', 255),
          col.str('health', 16),
          col.text('ports'),
          col.text('labels'),
          col.date('createdAt'),
          col.date('startedAt', true),
          col.date('finishedAt', true),
          col.int('exitCode', true),
          col.int('restartCount'),
          col.ref('snapshotId', true),
          col.date('updatedAt'),
        ],
        indices: [{ name: 'IDX_containers_project', columnNames: ['projectId'] }],
        foreignKeys: [cascade('machineId', 'machines'), cascade('projectId', 'projects')],
      }),
    );
    await q.createTable(
      new Table({
        name: 'docker_hosts',
        columns: [
          col.id('machineId'),
          col.ref('projectId'),
          col.bool('available'),
          col.str('reason', 2000, true),
          col.str('engineVersion', 64, true),
          col.date('updatedAt'),
        ],
        foreignKeys: [cascade('machineId', 'machines'), cascade('projectId', 'projects')],
      }),
    );
    await q.createTable(
      new Table({
        name: 'container_operations',
        columns: [
          col.id(),
          col.ref('projectId'),
          col.ref('machineId'),
          col.str('kind', 16),
          col.str('containerId', 64, true),
          col.str('status', 16),
          col.str('error', 2000, true),
          col.text('spec', true),
          col.ref('createdBy', true),
          col.date('createdAt'),
          col.date('startedAt', true),
          col.date('finishedAt', true),
          col.date('expiresAt'),
        ],
        indices: [{ name: 'IDX_container_operations_machine', columnNames: ['machineId', 'status', 'createdAt'] }],
        foreignKeys: [cascade('machineId', 'machines'), cascade('projectId', 'projects')],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('container_operations');
    await q.dropTable('docker_hosts');
    await q.dropTable('containers');
  }
}
