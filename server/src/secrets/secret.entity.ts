import { Column, Entity, PrimaryColumn } from 'typeorm';

/**
 * One project secret, sealed: the value exists here only as AES-256-GCM
 * ciphertext under the key `keyId` names (see SecretCipher).
 */
@Entity('project_secrets')
export class SecretEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  projectId: string;

  @PrimaryColumn({ type: 'varchar', length: 128 })
  name: string;

  /** Fingerprint of the key that sealed it; a later key rotation re-seals rows by this. */
  @Column({ type: 'varchar', length: 32 })
  keyId: string;

  /** base64 of the 96-bit nonce, fresh for every value written. */
  @Column({ type: 'varchar', length: 24 })
  nonce: string;

  /** base64 of ciphertext ‖ 128-bit tag. */
  @Column({ type: 'text' }) // MEDIUMTEXT on MySQL: the migration decides the storage type
  ciphertext: string;

  @Column({ type: 'varchar', length: 36, nullable: true })
  createdBy: string | null;

  @Column({ type: 'datetime', precision: 3 })
  createdAt: Date;

  @Column({ type: 'varchar', length: 36, nullable: true })
  updatedBy: string | null;

  @Column({ type: 'datetime', precision: 3 })
  updatedAt: Date;
}
