import { Foundation1764079200000 } from './1764079200000-Foundation';
import { AgentChannel1764086400000 } from './1764086400000-AgentChannel';
import { SignupControls1764590400000 } from './1764590400000-SignupControls';
import { ProjectSecrets1764616800000 } from './1764616800000-ProjectSecrets';
import { ApiTokens1764619200000 } from './1764619200000-ApiTokens';
import { ExecutionSecrets1764633600000 } from './1764633600000-ExecutionSecrets';
import { FileStore1764700000000 } from './1764700000000-FileStore';
import { EnrolmentTokenAgentLabels1764720000000 } from './1764720000000-EnrolmentTokenAgentLabels';
import { ExecutionFromFile1764740000000 } from './1764740000000-ExecutionFromFile';
import { Deliveries1764750000000 } from './1764750000000-Deliveries';
import { Schedules1764800000000 } from './1764800000000-Schedules';
import { Containers1764810000000 } from './1764810000000-Containers';
import { Metrics1764820000000 } from './1764820000000-Metrics';
import { EnrolmentTokenPurpose1764830000000 } from './1764830000000-EnrolmentTokenPurpose';
import { AgentPolicy1764840000000 } from './1764840000000-AgentPolicy';
import { AuditLog1764850000000 } from './1764850000000-AuditLog';
import { ImageIndexes1764870000000 } from './1764870000000-ImageIndexes';

/** Every migration, in order. Add new ones at the end; never edit one that has shipped. */
export const MIGRATIONS = [
  Foundation1764079200000,
  AgentChannel1764086400000,
  SignupControls1764590400000,
  ProjectSecrets1764616800000,
  ApiTokens1764619200000,
  ExecutionSecrets1764633600000,
  FileStore1764700000000,
  EnrolmentTokenAgentLabels1764720000000,
  ExecutionFromFile1764740000000,
  Deliveries1764750000000,
  Schedules1764800000000,
  Containers1764810000000,
  Metrics1764820000000,
  EnrolmentTokenPurpose1764830000000,
  AgentPolicy1764840000000,
  AuditLog1764850000000,
  ImageIndexes1764870000000,
];
