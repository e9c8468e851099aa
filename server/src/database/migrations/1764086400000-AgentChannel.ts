import { MigrationInterface, QueryRunner, Table } from 'typeorm';
import { col } from '../migration-helpers';

export class AgentChannel1764086400000 implements MigrationInterface {
  name = 'AgentChannel1764086400000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'enrolment_tokens',
        columns: [
          col.id(),
          col.ref('projectId'),
          col.str('secretHash', 64),
          col.str('prefix', 16),
          col.text('labels'),
          col.date('expiresAt', true),
          col.int('maxUses', true),
          { ...col.int('uses'), default: 0 },
          col.ref('createdBy', true),
          col.date('createdAt'),
          col.date('revokedAt', true),
        ],
        indices: [{ name: 'IDX_enrolment_tokens_project', columnNames: ['projectId'] }],
        foreignKeys: [{ columnNames: ['projectId'], referencedTableName: 'projects', referencedColumnNames: ['id'], onDelete: 'CASCADE' }],
      }),
    );
    await q.createTable(
      new Table({
        name: 'machines',
        columns: [
          col.id(),
          col.ref('projectId'),
          col.str('hostname', 255),
          col.text('labels'),
          col.text('facts', true),
          col.str('credentialHash', 64, true),
          col.ref('enrolmentTokenId', true),
          { ...col.str('status', 16), default: "'offline'" },
          col.str('connectionId', 64, true),
          col.str('nodeId', 64, true),
          col.date('connectedAt', true),
          col.date('lastSeenAt', true),
          col.date('createdAt'),
          col.date('revokedAt', true),
        ],
        indices: [
          { name: 'IDX_machines_project', columnNames: ['projectId'] },
          { name: 'IDX_machines_status_seen', columnNames: ['status', 'lastSeenAt'] },
        ],
        foreignKeys: [{ columnNames: ['projectId'], referencedTableName: 'projects', referencedColumnNames: ['id'], onDelete: 'CASCADE' }],
      }),
    );
    await q.createTable(
      new Table({
        name: 'executions',
        columns: [
          col.id(),
          col.ref('runId'),
          col.ref('projectId'),
          col.ref('machineId'),
          col.str('status', 16),
          col.mediumText('script'),
          col.text('args'),
          col.text('env'),
          col.str('cwd', 1024, true),
          col.int('timeoutSeconds'),
          col.date('expiresAt'),
          col.ref('createdBy', true),
          col.date('createdAt'),
          col.date('dispatchedAt', true),
          col.date('startedAt', true),
          col.date('finishedAt', true),
          col.date('cancelRequestedAt', true),
          col.int('exitCode', true),
          col.str('signal', 32, true),
          col.str('reason', 1000, true),
          col.bigint('lastSeq', true),
        ],
        indices: [
          { name: 'IDX_executions_machine_status', columnNames: ['machineId', 'status'] },
          { name: 'IDX_executions_project_created', columnNames: ['projectId', 'createdAt'] },
          { name: 'IDX_executions_run', columnNames: ['runId'] },
          { name: 'IDX_executions_status_expires', columnNames: ['status', 'expiresAt'] },
        ],
        foreignKeys: [
          { columnNames: ['projectId'], referencedTableName: 'projects', referencedColumnNames: ['id'], onDelete: 'CASCADE' },
          { columnNames: ['machineId'], referencedTableName: 'machines', referencedColumnNames: ['id'], onDelete: 'CASCADE' },
        ],
      }),
    );
    await q.createTable(
      new Table({
        name: 'execution_chunks',
        columns: [
          { ...col.ref('executionId'), isPrimary: true },
          { ...col.bigint('seq'), isPrimary: true },
          col.str('stream', 8),
          col.mediumText('data'),
        ],
        foreignKeys: [{ columnNames: ['executionId'], referencedTableName: 'executions', referencedColumnNames: ['id'], onDelete: 'CASCADE' }],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('execution_chunks');
    await q.dropTable('executions');
    await q.dropTable('machines');
    await q.dropTable('enrolment_tokens');
  }
}
