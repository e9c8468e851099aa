import { MigrationInterface, QueryRunner, Table } from 'typeorm';
import { col } from '../migration-helpers';

/**
 * Sign-up under the admin's control: instance settings (the sign-up mode,
 * and the one-row claim that makes exactly one first account the admin),
 * single-use sign-up invitations, pending project invitations by e-mail,
 * and the addresses each account logged in from (exempt from the
 * per-account lock-out a stranger could otherwise trigger).
 */
export class SignupControls1764590400000 implements MigrationInterface {
  name = 'SignupControls1764590400000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'instance_settings',
        columns: [{ ...col.str('name', 64), isPrimary: true }, col.text('value'), col.date('updatedAt')],
      }),
    );
    // An install that already has accounts has had its first admin.
    await q.query(
      "INSERT INTO instance_settings (name, value, updatedAt) SELECT 'first_admin', id, createdAt FROM users ORDER BY isAdmin DESC, createdAt ASC LIMIT 1",
    );
    await q.createTable(
      new Table({
        name: 'invitations',
        columns: [
          col.id(),
          col.str('tokenHash', 64),
          col.str('prefix', 16),
          col.ref('createdBy', true),
          col.date('createdAt'),
          col.date('expiresAt'),
          col.date('usedAt', true),
          col.ref('usedBy', true),
          col.date('revokedAt', true),
        ],
        indices: [{ name: 'IDX_invitations_token', columnNames: ['tokenHash'], isUnique: true }],
      }),
    );
    await q.createTable(
      new Table({
        name: 'project_invitations',
        columns: [
          col.id(),
          col.ref('projectId'),
          col.str('email', 254),
          col.str('role', 16),
          col.ref('invitedBy', true),
          col.date('createdAt'),
          col.date('expiresAt'),
        ],
        indices: [
          { name: 'IDX_project_invitations_project_email', columnNames: ['projectId', 'email'], isUnique: true },
          { name: 'IDX_project_invitations_email', columnNames: ['email'] },
        ],
        foreignKeys: [{ columnNames: ['projectId'], referencedTableName: 'projects', referencedColumnNames: ['id'], onDelete: 'CASCADE' }],
      }),
    );
    await q.createTable(
      new Table({
        name: 'login_known_addresses',
        columns: [{ ...col.str('key', 300), isPrimary: true }, col.date('lastSeenAt')],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('login_known_addresses');
    await q.dropTable('project_invitations');
    await q.dropTable('invitations');
    await q.dropTable('instance_settings');
  }
}
