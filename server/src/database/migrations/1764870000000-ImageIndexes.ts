import { MigrationInterface, QueryRunner, Table, TableColumn } from 'typeorm';
import { col } from '../migration-helpers';

/**
 * Layer-wise distribution: the layer index of an image file, and what each
 * machine's part of a delivery moved (bytes over the network, layers its
 * engine already had).
 */
export class ImageIndexes1764870000000 implements MigrationInterface {
  name = 'ImageIndexes1764870000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'image_indexes',
        columns: [{ ...col.ref('fileId'), isPrimary: true }, col.str('sha256', 64), col.int('layers'), col.mediumText('body'), col.date('createdAt')],
        foreignKeys: [{ columnNames: ['fileId'], referencedTableName: 'files', referencedColumnNames: ['id'], onDelete: 'CASCADE' }],
      }),
    );
    await q.addColumns('delivery_machines', [new TableColumn(col.bigint('movedBytes', true)), new TableColumn(col.int('layersPresent', true)), new TableColumn(col.int('layersTotal', true))]);
  }

  async down(q: QueryRunner): Promise<void> {
    for (const c of ['layersTotal', 'layersPresent', 'movedBytes']) await q.dropColumn('delivery_machines', c);
    await q.dropTable('image_indexes');
  }
}
