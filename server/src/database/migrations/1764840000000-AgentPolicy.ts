import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';
import { col } from '../migration-helpers';

/** The client policy each machine's agent reports at its hello (JSON); null until an agent that reports one connects. */
export class AgentPolicy1764840000000 implements MigrationInterface {
  name = 'AgentPolicy1764840000000';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn('machines', new TableColumn(col.text('policy', true)));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('machines', 'policy');
  }
}
