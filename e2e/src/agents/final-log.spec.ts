/**
 * Final means complete: whoever sees an execution in a final state, on /live
 * or over REST, and reads its log at once, reads every chunk up to lastSeq.
 * Real agent processes, many runs at once, each log compared with what its
 * script wrote (design invariant 2).
 */
import { isFinalStatus, LiveClientEvents, LiveServerEvents, type LiveExecutionEvent } from '@kapitan/shared';
import { connectLive, describeOrSkip, emitWithAck, requireMysql, startServer, waitFor, type LiveSocket, type TestAgent, type TestServer } from '../harness';
import { setupProject, startOnlineAgent, type TestProject } from './fixtures';

const AGENTS = 3;
const ROUNDS = 50; // one run on every agent per round: 150 runs
const IN_FLIGHT = 4; // rounds at once, so the agents and the server write concurrently
const LINES = 1000;

/** One echo per line: the agent reads many small writes, so a run is many chunks and messages. */
const SCRIPT = `#!/bin/sh\ni=1\nwhile [ $i -le ${LINES} ]; do echo "line $i of $$"; i=$((i+1)); done\n`;

interface Read {
  executionId: string;
  via: 'live' | 'rest';
  status: string;
  /** From REST only (the live summary does not carry it). */
  lastSeq?: number | null;
  text: string;
}

describeOrSkip(requireMysql())('a final status means a complete log (MySQL, real agents, under load)', () => {
  let server: TestServer;
  let p: TestProject;
  let live: LiveSocket;
  const agents: TestAgent[] = [];

  beforeAll(async () => {
    server = await startServer({ database: 'mysql' });
    p = await setupProject(server.url, 'final-log');
    for (let i = 0; i < AGENTS; i++) agents.push(await startOnlineAgent(server.url, p));
    live = await connectLive(server.url, p.owner.accessToken);
    expect(await emitWithAck(live, LiveClientEvents.subscribeProject, { projectId: p.projectId })).toMatchObject({ ok: true });
  });
  afterAll(async () => {
    live?.disconnect();
    for (const a of agents) await a.dispose();
    await server?.dispose();
  });

  test(`${AGENTS * ROUNDS} runs of ${LINES} lines: the log read the moment the run is seen final (on /live, and by polling REST) holds every line`, async () => {
    const reads: Promise<Read>[] = [];
    const read = async (executionId: string, via: Read['via'], e: { status: string; lastSeq?: number | null }): Promise<Read> => ({
      executionId,
      via,
      status: e.status,
      lastSeq: e.lastSeq,
      text: await p.api.getExecutionLogText(executionId),
    });

    // The first final status /live shows for each execution: read its log right away, no wait.
    const seenLive = new Set<string>();
    const onExecution = (ev: LiveExecutionEvent): void => {
      const e = ev.execution;
      if (!isFinalStatus(e.status) || seenLive.has(e.id)) return;
      seenLive.add(e.id);
      reads.push(read(e.id, 'live', e));
    };
    live.on(LiveServerEvents.execution, onExecution);

    // Poll REST for the status of each run and read the log as soon as it is final.
    const pollUntilFinal = (executionId: string): Promise<void> =>
      waitFor(
        async () => {
          const e = await p.api.getExecution(executionId);
          if (!isFinalStatus(e.status)) return false;
          reads.push(read(executionId, 'rest', e));
          return true;
        },
        { timeoutMs: 180_000, intervalMs: 5, message: `execution ${executionId} to be final` },
      ).then(() => undefined);

    const ids: string[] = [];
    const round = async (): Promise<void> => {
      const { executions } = await p.api.createExecution(p.projectId, { script: SCRIPT, targets: { all: true } });
      expect(executions).toHaveLength(AGENTS);
      ids.push(...executions.map((e) => e.id));
      await Promise.all(executions.map((e) => pollUntilFinal(e.id)));
    };
    let next = 0;
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < ROUNDS) {
          next++;
          await round();
        }
      }),
    );
    await waitFor(() => ids.every((id) => seenLive.has(id)), { timeoutMs: 30_000, message: 'every run final on /live' });
    live.off(LiveServerEvents.execution, onExecution);
    const done = await Promise.all(reads);

    expect(ids).toHaveLength(AGENTS * ROUNDS);
    expect(done.filter((r) => r.via === 'live')).toHaveLength(ids.length);
    expect(done.filter((r) => r.via === 'rest')).toHaveLength(ids.length);
    const bad: string[] = [];
    for (const r of done) {
      const lines = r.text.split('\n');
      const pid = /^line 1 of (\d+)$/.exec(lines[0] ?? '')?.[1];
      const expected = Array.from({ length: LINES }, (_, i) => `line ${i + 1} of ${pid}`).join('\n') + '\n';
      if (r.status !== 'succeeded' || pid === undefined || r.text !== expected || r.lastSeq === null) {
        bad.push(`${r.via} ${r.executionId}: ${r.status}, lastSeq ${r.lastSeq}, ${lines.length - 1} lines, ends ${JSON.stringify(r.text.slice(-60))}`);
      }
    }
    expect(bad).toEqual([]);
  }, 600_000);
});
