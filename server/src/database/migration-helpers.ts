import { TableColumnOptions } from 'typeorm';

/**
 * Column builders for migrations that run unchanged on SQLite and MySQL:
 * TypeORM's Table API renders each for the connected driver.
 */
export const col = {
  id: (name = 'id'): TableColumnOptions => ({ name, type: 'varchar', length: '36', isPrimary: true }),
  ref: (name: string, nullable = false): TableColumnOptions => ({ name, type: 'varchar', length: '36', isNullable: nullable }),
  str: (name: string, length: number, nullable = false): TableColumnOptions => ({ name, type: 'varchar', length: String(length), isNullable: nullable }),
  text: (name: string, nullable = false): TableColumnOptions => ({ name, type: 'text', isNullable: nullable }),
  /** Up to 16 MiB on MySQL (TEXT stops at 64 KiB); SQLite gives it TEXT affinity. */
  mediumText: (name: string, nullable = false): TableColumnOptions => ({ name, type: 'mediumtext', isNullable: nullable }),
  int: (name: string, nullable = false): TableColumnOptions => ({ name, type: 'int', isNullable: nullable }),
  bigint: (name: string, nullable = false): TableColumnOptions => ({ name, type: 'bigint', isNullable: nullable }),
  bool: (name: string, dflt = false): TableColumnOptions => ({ name, type: 'boolean', default: dflt ? 1 : 0 }),
  date: (name: string, nullable = false): TableColumnOptions => ({ name, type: 'datetime', precision: 3, isNullable: nullable }),
};
