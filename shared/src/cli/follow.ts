/**
 * Follow a run to its end over REST: the status of every execution of the
 * run and the new chunks of each log, polled. A run is over when every
 * execution is final and its log complete (every chunk up to `lastSeq`
 * stored), so what is printed is the whole output, not what happened to
 * arrive before the status flipped.
 */
import { isFinalStatus, type ExecutionLog, type ExecutionSummary } from '../executions';
import type { Machine } from '../machines';
import { Api, isTransient } from './api';

export interface FollowOptions {
  projectId: string;
  runId: string;
  executionIds: string[];
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  pollMs?: number;
  /** Give up after this long (the run goes on; only the CLI stops watching). */
  timeoutMs?: number;
}

export interface FollowResult {
  executions: ExecutionSummary[];
  /** True when every execution succeeded. */
  ok: boolean;
  hostnames: Map<string, string>;
}

export async function followRun(api: Api, o: FollowOptions): Promise<FollowResult> {
  const machines = await api.request<Machine[]>('GET', `/projects/${o.projectId}/machines`);
  const hostnames = new Map(machines.map((m) => [m.id, m.hostname]));
  const several = o.executionIds.length > 1;
  const state = new Map(o.executionIds.map((id) => [id, { nextSeq: 0, complete: false, status: undefined as ExecutionSummary | undefined, partial: { stdout: '', stderr: '' } }]));
  const deadline = Date.now() + (o.timeoutMs ?? 24 * 3600_000);
  const pollMs = o.pollMs ?? 300;

  for (;;) {
    try {
      const list = await api.request<ExecutionSummary[]>('GET', `/projects/${o.projectId}/executions?runId=${o.runId}&limit=500`);
      for (const e of list) {
        const s = state.get(e.id);
        if (s) s.status = e;
      }
      for (const [id, s] of state) {
        if (s.complete) continue;
        const final = s.status !== undefined && isFinalStatus(s.status.status);
        // Read the log until it says complete (final) or until no new chunk arrives (still running).
        for (;;) {
          const log = await api.request<ExecutionLog>('GET', `/executions/${id}/log?fromSeq=${s.nextSeq}`);
          for (const c of log.chunks) {
            const sink = c.stream === 'stdout' ? o.stdout : o.stderr;
            if (several) {
              // Prefix whole lines with the machine, holding a line's start until its end arrives.
              const text = s.partial[c.stream] + c.data;
              const cut = text.lastIndexOf('\n') + 1;
              s.partial[c.stream] = text.slice(cut);
              const host = hostnames.get(s.status?.machineId ?? '') ?? id.slice(0, 8);
              if (cut) sink(text.slice(0, cut).replace(/^(?=.)/gm, `[${host}] `));
            } else {
              sink(c.data);
            }
          }
          s.nextSeq = log.nextSeq;
          if (final && log.complete) {
            s.complete = true;
            if (several) {
              const host = hostnames.get(s.status?.machineId ?? '') ?? id.slice(0, 8);
              for (const stream of ['stdout', 'stderr'] as const) {
                if (s.partial[stream]) (stream === 'stdout' ? o.stdout : o.stderr)(`[${host}] ${s.partial[stream]}\n`);
              }
            }
          }
          if (!log.chunks.length || s.complete) break;
        }
      }
    } catch (err) {
      // A node restarting or a balancer hiccup: keep watching; anything else is the caller's to report.
      if (!isTransient(err)) throw err;
    }
    const all = [...state.values()];
    if (all.every((s) => s.complete)) {
      const executions = all.map((s) => s.status!);
      return { executions, ok: executions.every((e) => e.status === 'succeeded'), hostnames };
    }
    if (Date.now() > deadline) throw new Error(`the run ${o.runId} has not finished after ${Math.round((o.timeoutMs ?? 0) / 1000)} s; it goes on, follow it in the dashboard`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

export function describeOutcome(e: ExecutionSummary, hostname: string | undefined): string {
  const what = e.status === 'succeeded' || e.status === 'failed' ? `${e.status} (exit ${e.exitCode ?? e.signal ?? '?'})` : e.status;
  return `${hostname ?? e.machineId}: ${what}${e.reason ? ` — ${e.reason}` : ''}${e.durationMs !== null ? ` in ${(e.durationMs / 1000).toFixed(1)} s` : ''}`;
}
