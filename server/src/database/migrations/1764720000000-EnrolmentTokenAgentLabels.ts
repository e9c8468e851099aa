import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';
import { col } from '../migration-helpers';

/** Whether an enrolling agent may add labels of its own; existing tokens keep none (false). */
export class EnrolmentTokenAgentLabels1764720000000 implements MigrationInterface {
  name = 'EnrolmentTokenAgentLabels1764720000000';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn('enrolment_tokens', new TableColumn(col.bool('allowAgentLabels')));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('enrolment_tokens', 'allowAgentLabels');
  }
}
