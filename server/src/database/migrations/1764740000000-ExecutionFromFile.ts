import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';
import { col } from '../migration-helpers';

/** A run made from a stored script file keeps which file and which content (sha256); null for inline scripts and older rows. */
export class ExecutionFromFile1764740000000 implements MigrationInterface {
  name = 'ExecutionFromFile1764740000000';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumns('executions', [new TableColumn(col.ref('fileId', true)), new TableColumn(col.str('fileSha256', 64, true))]);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('executions', 'fileSha256');
    await q.dropColumn('executions', 'fileId');
  }
}
