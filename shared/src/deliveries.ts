import { z } from 'zod';
import { IdSchema } from './common';
import { Sha256Schema } from './files';

/**
 * The agent's download of a file it was sent: plain HTTP(S) on the server's
 * URL, never the socket (a socket message is capped at 1 MB), with the
 * machine credential as `Authorization: Bearer kpm_…` and one `Range` to
 * resume. The answer carries `ETag: "<sha256>"`; the agent hashes what it
 * received and uses nothing that does not match.
 */
export const AGENT_FILES_PATH = '/api/agent/files';
export const agentFileContentPath = (fileId: string): string => `${AGENT_FILES_PATH}/${encodeURIComponent(fileId)}/content`;

/** What the agent is told about a file to fetch: enough to address its cache and to verify the bytes. */
export const FileRefSchema = z.strictObject({
  fileId: IdSchema,
  sha256: Sha256Schema,
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
});
export type FileRef = z.infer<typeof FileRefSchema>;
