import { Foundation1764079200000 } from './1764079200000-Foundation';

/** Every migration, in order. Add new ones at the end; never edit one that has shipped. */
export const MIGRATIONS = [Foundation1764079200000];
