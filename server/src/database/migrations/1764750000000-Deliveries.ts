import { MigrationInterface, QueryRunner, Table } from 'typeorm';
import { col } from '../migration-helpers';

/** Deploys and distributions of stored files, and each machine's part of one. */
export class Deliveries1764750000000 implements MigrationInterface {
  name = 'Deliveries1764750000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'deliveries',
        columns: [
          col.id(),
          col.ref('projectId'),
          col.str('kind', 16),
          col.ref('fileId'),
          col.str('fileName', 255),
          col.str('sha256', 64),
          col.bigint('size'),
          col.str('path', 1024, true),
          col.int('mode', true),
          col.str('owner', 65, true),
          col.ref('createdBy', true),
          col.date('createdAt'),
          col.date('expiresAt'),
        ],
        indices: [
          { name: 'IDX_deliveries_project', columnNames: ['projectId', 'createdAt'] },
          { name: 'IDX_deliveries_file', columnNames: ['fileId'] },
        ],
        foreignKeys: [{ columnNames: ['projectId'], referencedTableName: 'projects', referencedColumnNames: ['id'], onDelete: 'CASCADE' }],
      }),
    );
    await q.createTable(
      new Table({
        name: 'delivery_machines',
        columns: [
          { ...col.ref('deliveryId'), isPrimary: true },
          { ...col.ref('machineId'), isPrimary: true },
          col.ref('projectId'),
          col.str('status', 16),
          col.bigint('receivedBytes'),
          col.str('reason', 1000, true),
          col.str('imageId', 200, true),
          col.date('dispatchedAt', true),
          col.date('updatedAt'),
          col.date('finishedAt', true),
        ],
        indices: [
          // A hello asks for the machine's open parts; the sweep for everything open.
          { name: 'IDX_delivery_machines_machine', columnNames: ['machineId', 'status'] },
          { name: 'IDX_delivery_machines_status', columnNames: ['status'] },
        ],
        foreignKeys: [
          { columnNames: ['deliveryId'], referencedTableName: 'deliveries', referencedColumnNames: ['id'], onDelete: 'CASCADE' },
          { columnNames: ['machineId'], referencedTableName: 'machines', referencedColumnNames: ['id'], onDelete: 'CASCADE' },
        ],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('delivery_machines');
    await q.dropTable('deliveries');
  }
}
