import { Column, Entity, PrimaryColumn } from 'typeorm';

/** One row per log-in; the JWT names it (`sid`), so deleting it logs that token out at once. */
@Entity('sessions')
export class SessionEntity {
  @PrimaryColumn({ type: 'varchar', length: 36 })
  id: string;

  @Column({ type: 'varchar', length: 36 })
  userId: string;

  @Column({ type: 'datetime', precision: 3 })
  createdAt: Date;

  @Column({ type: 'datetime', precision: 3 })
  expiresAt: Date;
}

@Entity('login_failures')
export class LoginFailureEntity {
  @Column({ type: 'integer', primary: true, generated: 'increment' })
  id: number;

  @Column({ type: 'varchar', length: 300 })
  key: string;

  @Column({ type: 'datetime', precision: 3 })
  at: Date;
}

/** An (account, address) pair that logged in successfully: exempt from the per-account ceiling. */
@Entity('login_known_addresses')
export class KnownLoginAddressEntity {
  @PrimaryColumn({ type: 'varchar', length: 300 })
  key: string;

  @Column({ type: 'datetime', precision: 3 })
  lastSeenAt: Date;
}
