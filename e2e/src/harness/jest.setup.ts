// Runs in every e2e test file (setupFilesAfterEnv): whatever the harness
// started in this file is stopped and removed after its last test.
import { runCleanups } from './cleanup';

afterAll(runCleanups, 60_000);
