import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { FileKind } from '@kapitan/shared';

/** MySQL hands BIGINT back as a string; sizes and offsets stay far below 2^53, so numbers are safe here. */
export const bigintAsNumber = { to: (v: number) => v, from: (v: string | number | null) => (v === null ? null : Number(v)) };

/**
 * A file of a project. The bytes live in the blob store under their sha256;
 * several rows (the same bytes uploaded twice, or to two projects) share one blob.
 */
@Entity('files')
@Index('IDX_files_project', ['projectId', 'createdAt'])
@Index('IDX_files_sha256', ['sha256'])
export class FileEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ type: 'varchar', length: 36 })
  projectId: string;

  /** For people and Content-Disposition only; never part of a path on disk. */
  @Column({ type: 'varchar', length: 255 })
  name: string;

  @Column({ type: 'varchar', length: 16 })
  kind: FileKind;

  @Column({ type: 'bigint', transformer: bigintAsNumber })
  size: number;

  @Column({ type: 'varchar', length: 64 })
  sha256: string;

  @Column({ type: 'varchar', length: 36, nullable: true })
  uploadedBy: string | null;

  @Column({ type: 'datetime', precision: 3 })
  createdAt: Date;
}

/**
 * A resumable upload in progress. Its bytes grow in `uploads/<id>.part` of the
 * store; `received` is how many of them are durable. `lockedUntil` is the claim
 * of the one chunk being written, so two requests (on any node sharing the
 * store) never write the same upload at once.
 */
@Entity('file_uploads')
@Index('IDX_file_uploads_expires', ['expiresAt'])
export class FileUploadEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ type: 'varchar', length: 36 })
  projectId: string;

  @Column({ type: 'varchar', length: 36 })
  userId: string;

  @Column({ type: 'varchar', length: 255 })
  name: string;

  @Column({ type: 'varchar', length: 16 })
  kind: FileKind;

  @Column({ type: 'bigint', transformer: bigintAsNumber })
  size: number;

  @Column({ type: 'bigint', transformer: bigintAsNumber })
  received: number;

  /** The digest the client promised, checked before the file becomes visible. */
  @Column({ type: 'varchar', length: 64, nullable: true })
  sha256: string | null;

  @Column({ type: 'datetime', precision: 3, nullable: true })
  lockedUntil: Date | null;

  @Column({ type: 'datetime', precision: 3 })
  createdAt: Date;

  @Column({ type: 'datetime', precision: 3 })
  expiresAt: Date;
}
