import { MigrationInterface, QueryRunner, Table } from 'typeorm';
import { col } from '../migration-helpers';

export class AuditLog1764850000000 implements MigrationInterface {
  name = 'AuditLog1764850000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'audit_events',
        columns: [
          // Assigned by the database: one order for every node, and the pagination cursor.
          { name: 'seq', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          col.date('at'),
          col.str('action', 64),
          col.str('actorType', 16),
          col.ref('actorUserId', true),
          col.str('actorEmail', 320, true),
          col.ref('actorTokenId', true),
          col.str('actorTokenName', 100, true),
          col.ref('actorMachineId', true),
          // No foreign keys: an event outlives the project, machine or user it names.
          col.ref('projectId', true),
          col.ref('machineId', true),
          col.str('address', 64, true),
          col.str('requestId', 64, true),
          col.text('details'),
        ],
        indices: [
          { name: 'IDX_audit_project', columnNames: ['projectId', 'seq'] },
          { name: 'IDX_audit_at', columnNames: ['at'] },
        ],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('audit_events');
  }
}
