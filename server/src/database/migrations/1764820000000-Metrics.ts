import { MigrationInterface, QueryRunner, Table, TableColumnOptions } from 'typeorm';
import { col } from '../migration-helpers';

const cascade = (column: string, table: string) => ({ columnNames: [column], referencedTableName: table, referencedColumnNames: ['id'], onDelete: 'CASCADE' });
const dbl = (name: string, nullable = false): TableColumnOptions => ({ name, type: 'double', isNullable: nullable });

/**
 * Host and container metrics: one row per stored sample (`raw`) and per
 * bucket of the coarser resolutions (`1m`, `1h`). The primary key starts
 * with the machine, so every read and write names its machine; the second
 * index serves the rollups and the retention deletes, which go by time.
 */
export class Metrics1764820000000 implements MigrationInterface {
  name = 'Metrics1764820000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'host_metrics',
        columns: [
          { ...col.ref('machineId'), isPrimary: true },
          { ...col.str('resolution', 3), isPrimary: true },
          { ...col.bigint('bucketAt'), isPrimary: true },
          dbl('cpuPercent', true),
          dbl('memoryUsedBytes'),
          dbl('memoryTotalBytes'),
          dbl('diskRootUsedBytes'),
          dbl('diskRootTotalBytes'),
          dbl('diskStateUsedBytes'),
          dbl('diskStateTotalBytes'),
          dbl('netRxBytesPerSec', true),
          dbl('netTxBytesPerSec', true),
          dbl('load1'),
          dbl('load5'),
          dbl('load15'),
        ],
        indices: [{ name: 'IDX_host_metrics_time', columnNames: ['resolution', 'bucketAt'] }],
        foreignKeys: [cascade('machineId', 'machines')],
      }),
    );
    await q.createTable(
      new Table({
        name: 'container_metrics',
        columns: [
          { ...col.ref('machineId'), isPrimary: true },
          { ...col.str('resolution', 3), isPrimary: true },
          { ...col.bigint('bucketAt'), isPrimary: true },
          { ...col.str('containerId', 64), isPrimary: true },
          dbl('cpuPercent', true),
          dbl('memoryUsedBytes'),
          dbl('memoryLimitBytes', true),
        ],
        indices: [{ name: 'IDX_container_metrics_time', columnNames: ['resolution', 'bucketAt'] }],
        foreignKeys: [cascade('machineId', 'machines')],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('container_metrics');
    await q.dropTable('host_metrics');
  }
}
