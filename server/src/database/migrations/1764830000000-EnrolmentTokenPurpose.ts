import { MigrationInterface, QueryRunner, TableColumn } from 'typeorm';
import { col } from '../migration-helpers';

/** What an enrolment token was made for (a bundle, a one-line install, or by hand); existing tokens were made by hand. */
export class EnrolmentTokenPurpose1764830000000 implements MigrationInterface {
  name = 'EnrolmentTokenPurpose1764830000000';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumn('enrolment_tokens', new TableColumn({ ...col.str('purpose', 16), default: "'manual'" }));
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropColumn('enrolment_tokens', 'purpose');
  }
}
