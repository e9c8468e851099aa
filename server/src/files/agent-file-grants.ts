import { Injectable } from '@nestjs/common';

/** Does this machine have work (not yet final) that needs this file? */
export type AgentFileGrant = (machineId: string, fileId: string) => Promise<boolean>;

/**
 * Who may download what over `GET /api/agent/files/:id/content`: a machine
 * credential alone reaches only its own project's files, and only those a
 * feature that sends files to machines (deploys, distributions) says this
 * machine still needs. A stolen credential then cannot walk the project's
 * store, and a file stops being downloadable by a machine once its delivery
 * there is final. Features register here, as with FileReferences, so the
 * files feature never imports them.
 */
@Injectable()
export class AgentFileGrants {
  private readonly grants = new Map<string, AgentFileGrant>();

  register(name: string, grant: AgentFileGrant): () => void {
    this.grants.set(name, grant);
    return () => {
      if (this.grants.get(name) === grant) this.grants.delete(name);
    };
  }

  async allows(machineId: string, fileId: string): Promise<boolean> {
    for (const grant of this.grants.values()) if (await grant(machineId, fileId)) return true;
    return false;
  }
}
