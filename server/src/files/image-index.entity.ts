import { Column, Entity, PrimaryColumn } from 'typeorm';

/**
 * The layer index of one stored image file (see image-index.ts), as JSON: built
 * once, on the file's first distribution, and gone with the file's row
 * (foreign key). Keyed by file, not by digest, so its life is the row's.
 */
@Entity('image_indexes')
export class ImageIndexEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  fileId: string;

  @Column({ type: 'varchar', length: 64 })
  sha256: string;

  @Column({ type: 'int' })
  layers: number;

  /** ImageIndexSchema as JSON; a few hundred bytes per layer. */
  @Column({ type: 'text' }) // MEDIUMTEXT on MySQL: the migration decides the storage type
  body: string;

  @Column({ type: 'datetime', precision: 3 })
  createdAt: Date;
}
