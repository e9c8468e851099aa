import { MigrationInterface, QueryRunner, Table } from 'typeorm';
import { col } from '../migration-helpers';

export class Schedules1764800000000 implements MigrationInterface {
  name = 'Schedules1764800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.createTable(
      new Table({
        name: 'schedules',
        columns: [
          col.id(),
          col.ref('projectId'),
          col.str('name', 100),
          col.str('cron', 255, true),
          col.str('timezone', 64),
          col.date('runAt', true),
          col.bool('enabled', true),
          col.str('missedRunPolicy', 16),
          col.str('overlapPolicy', 16),
          col.int('queueLimit'),
          col.mediumText('run'),
          col.ref('fileId', true),
          col.date('nextFireAt', true),
          col.ref('createdBy', true),
          col.date('createdAt'),
          col.date('updatedAt'),
        ],
        indices: [
          { name: 'IDX_schedules_project', columnNames: ['projectId', 'createdAt'] },
          // The tick asks for what is due: nextFireAt <= now.
          { name: 'IDX_schedules_next', columnNames: ['nextFireAt'] },
          { name: 'IDX_schedules_file', columnNames: ['fileId'] },
        ],
        foreignKeys: [{ columnNames: ['projectId'], referencedTableName: 'projects', referencedColumnNames: ['id'], onDelete: 'CASCADE' }],
      }),
    );
    await q.createTable(
      new Table({
        name: 'schedule_occurrences',
        columns: [
          col.id(),
          col.ref('scheduleId'),
          col.ref('projectId'),
          col.date('fireAt'),
          col.str('status', 16),
          col.str('reason', 500, true),
          col.ref('runId', true),
          col.date('leaseUntil', true),
          col.date('firedAt', true),
          col.date('finishedAt', true),
          col.date('createdAt'),
        ],
        indices: [
          // The claim: one row per (schedule, slot), whichever node inserts it first.
          { name: 'UQ_occurrences_slot', columnNames: ['scheduleId', 'fireAt'], isUnique: true },
          { name: 'IDX_occurrences_status', columnNames: ['status', 'scheduleId'] },
          { name: 'IDX_occurrences_run', columnNames: ['runId'] },
        ],
        foreignKeys: [{ columnNames: ['scheduleId'], referencedTableName: 'schedules', referencedColumnNames: ['id'], onDelete: 'CASCADE' }],
      }),
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropTable('schedule_occurrences');
    await q.dropTable('schedules');
  }
}
