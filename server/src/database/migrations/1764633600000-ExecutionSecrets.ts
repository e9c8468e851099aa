import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';
import { col } from '../migration-helpers';

/** The names of the secrets a run references (JSON list); nullable, so rows from before read as none. */
export class ExecutionSecrets1764633600000 implements MigrationInterface {
  name = 'ExecutionSecrets1764633600000';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn('executions', new TableColumn(col.text('secrets', true)));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('executions', 'secrets');
  }
}
