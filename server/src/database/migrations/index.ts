import { Foundation1764079200000 } from './1764079200000-Foundation';
import { AgentChannel1764086400000 } from './1764086400000-AgentChannel';
import { ProjectSecrets1764616800000 } from './1764616800000-ProjectSecrets';
import { FileStore1764700000000 } from './1764700000000-FileStore';

/** Every migration, in order. Add new ones at the end; never edit one that has shipped. */
export const MIGRATIONS = [Foundation1764079200000, AgentChannel1764086400000, ProjectSecrets1764616800000, FileStore1764700000000];
