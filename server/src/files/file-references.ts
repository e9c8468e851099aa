import { Injectable } from '@nestjs/common';

/** The file a reference check is asked about. */
export interface ReferencedFile {
  id: string;
  projectId: string;
  sha256: string;
}

/**
 * Answers, for one file, what still needs it: a list of human-readable
 * reasons ("schedule nightly-backup", "deploy 3f2a… pending"), empty when
 * nothing does.
 */
export type FileReferenceCheck = (file: ReferencedFile) => Promise<string[]>;

/**
 * Where features that use files (schedules, deploys) say which files they
 * still need, so a file in use cannot be deleted from under them. A feature
 * imports FilesModule and registers a check once, e.g. in onModuleInit:
 *
 *   constructor(private readonly refs: FileReferences) {}
 *   onModuleInit() { this.refs.register('schedules', (f) => this.schedules.namesUsingFile(f.id)); }
 *
 * The files feature then never imports the features that depend on it.
 */
@Injectable()
export class FileReferences {
  private readonly checks = new Map<string, FileReferenceCheck>();

  /** Adds (or, under the same name, replaces) a check; returns its removal. */
  register(name: string, check: FileReferenceCheck): () => void {
    this.checks.set(name, check);
    return () => {
      if (this.checks.get(name) === check) this.checks.delete(name);
    };
  }

  /** Every reason any registered feature gives for keeping `file`. */
  async referencesTo(file: ReferencedFile): Promise<string[]> {
    const all = await Promise.all([...this.checks.values()].map((check) => check(file)));
    return all.flat();
  }
}
