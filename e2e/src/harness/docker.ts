import { dockerUnavailableReason } from '@kapitan/agent/testing';
import { requirement } from './requirements';

/** The skip rule for tests that need a Docker engine and busybox-static (see requirements.ts). */
export async function requireDocker(): Promise<string | null> {
  return requirement('Docker', await dockerUnavailableReason());
}
