import type { MissedRunPolicy, OccurrenceStatus, OverlapPolicy, ScheduleRunSpec } from '@kapitan/shared';
import { Column, Entity, PrimaryColumn } from 'typeorm';

@Entity('schedules')
export class ScheduleEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ type: 'varchar', length: 36 })
  projectId: string;

  @Column({ type: 'varchar', length: 100 })
  name: string;

  @Column({ type: 'varchar', length: 255, nullable: true })
  cron: string | null;

  @Column({ type: 'varchar', length: 64 })
  timezone: string;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  runAt: Date | null;

  @Column({ type: 'boolean' })
  enabled: boolean;

  @Column({ type: 'varchar', length: 16 })
  missedRunPolicy: MissedRunPolicy;

  @Column({ type: 'varchar', length: 16 })
  overlapPolicy: OverlapPolicy;

  @Column({ type: 'int' })
  queueLimit: number;

  /** The run request each occurrence makes (secrets by name only). */
  @Column({ type: 'simple-json' })
  run: ScheduleRunSpec;

  /** The uploaded file the run uses, if any: kept as a column so the file cannot be deleted while a schedule needs it. */
  @Column({ type: 'varchar', length: 36, nullable: true })
  fileId: string | null;

  /**
   * The next slot to fire, as computed from the cron expression (or runAt).
   * Every node reads it and advances it with a conditional update, so nodes
   * agree on the slot whatever their own clocks say. Null: nothing due
   * (paused after recording a skip, or a one-shot that has fired).
   */
  @Column({ type: 'datetime', precision: 3, nullable: true })
  nextFireAt: Date | null;

  @Column({ type: 'varchar', length: 36, nullable: true })
  createdBy: string | null;

  @Column({ type: 'datetime', precision: 3 })
  createdAt: Date;

  @Column({ type: 'datetime', precision: 3 })
  updatedAt: Date;
}

/**
 * One slot of one schedule. The UNIQUE (scheduleId, fireAt) index is what
 * makes an occurrence fire exactly once across any number of nodes on one
 * database: a node claims a slot by INSERTing this row, and a duplicate-key
 * error tells every other node that the slot is taken. The database
 * decides, not a lock with a lease that can expire under a slow node, and
 * not the nodes' clocks (fireAt is the slot the cron expression computed,
 * the same on every node). A node that dies after claiming leaves the row
 * in `firing` with a lease; another node takes it over once the lease has
 * passed, and the executions are created in the same transaction that
 * moves the row out of `firing`, so a takeover never doubles them.
 */
@Entity('schedule_occurrences')
export class OccurrenceEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ type: 'varchar', length: 36 })
  scheduleId: string;

  @Column({ type: 'varchar', length: 36 })
  projectId: string;

  @Column({ type: 'datetime', precision: 3 })
  fireAt: Date;

  @Column({ type: 'varchar', length: 16 })
  status: OccurrenceStatus;

  @Column({ type: 'varchar', length: 500, nullable: true })
  reason: string | null;

  /** The run of its executions; also its claim token while `firing` (a takeover draws a new one). */
  @Column({ type: 'varchar', length: 36, nullable: true })
  runId: string | null;

  /** While `firing`: until when the claiming node holds it. */
  @Column({ type: 'datetime', precision: 3, nullable: true })
  leaseUntil: Date | null;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  firedAt: Date | null;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  finishedAt: Date | null;

  @Column({ type: 'datetime', precision: 3 })
  createdAt: Date;
}
