import { Injectable, Logger } from '@nestjs/common';
import { notFound, unauthenticated } from '../common/api-exception';
import { EnrolmentService } from '../machines/enrolment.service';
import { AgentFileGrants } from './agent-file-grants';
import type { ImageIndex } from '@kapitan/shared';
import { FileContent, FilesService } from './files.service';
import { ImageIndexService } from './image-index.service';
import { ByteRange } from './range';

const BEARER = /^Bearer\s+(\S+)$/i;

/**
 * Agents' downloads: the machine credential (the same one as in the socket
 * handshake) as a Bearer token, then the file only if it is the machine's
 * project's and a delivery to that machine still needs it. Everything else
 * answers 404 in the same words, so a credential learns nothing about files
 * it was not sent.
 */
@Injectable()
export class AgentDownloadsService {
  private readonly logger = new Logger(AgentDownloadsService.name);

  constructor(
    private readonly enrolment: EnrolmentService,
    private readonly grants: AgentFileGrants,
    private readonly files: FilesService,
    private readonly indexes: ImageIndexService,
  ) {}

  async content(authorization: string | undefined, fileId: string, range: (size: number) => ByteRange | null): Promise<FileContent> {
    const machine = await this.granted(authorization, fileId);
    return this.files.contentForProject(machine.projectId, fileId, null, range);
  }

  /** The layer index of an image the machine was sent, under the same rule as its bytes; 404 when it has none. */
  async imageIndex(authorization: string | undefined, fileId: string): Promise<ImageIndex> {
    const machine = await this.granted(authorization, fileId);
    const index = await this.indexes.find(machine.projectId, fileId);
    if (!index) throw notFound('image index');
    return index;
  }

  private async granted(authorization: string | undefined, fileId: string): Promise<{ machineId: string; projectId: string }> {
    const credential = BEARER.exec(authorization ?? '')?.[1];
    const machine = credential ? await this.enrolment.authenticate(credential) : null;
    if (!machine) throw unauthenticated('a valid machine credential is required (Authorization: Bearer kpm_…)');
    if (!(await this.grants.allows(machine.machineId, fileId))) {
      this.logger.warn({ machineId: machine.machineId, fileId }, 'agent download refused: no pending delivery of this file to this machine');
      throw notFound('file');
    }
    return machine;
  }
}
