/**
 * The executions' stream in the outbox: `execution:started`, then
 * `execution:output` chunks in sequence order, then `execution:finished`,
 * keyed by execution id.
 */
import {
  AgentEvents,
  ExecutionFinishedSchema,
  ExecutionStartedSchema,
  OutputChunkSchema,
  type ExecutionFinished,
  type ExecutionStarted,
  type OutputChunk,
} from '@kapitan/shared';
import type { EntryPhase, OutboxChannel } from './outbox';

const encodedBytes = (s: string): number => Buffer.byteLength(JSON.stringify(s), 'utf8');

export const executionChannel: OutboxChannel<ExecutionStarted, OutputChunk, ExecutionFinished> = {
  name: 'execution',
  labels: { open: 'started', item: 'output', close: 'finished' },
  schemas: { open: ExecutionStartedSchema, item: OutputChunkSchema, close: ExecutionFinishedSchema },
  openMessage: (_key, payload) => ({ event: AgentEvents.executionStarted, payload }),
  itemsMessage: (executionId, chunks) => ({ event: AgentEvents.executionOutput, payload: { executionId, chunks } }),
  closeMessage: (_key, payload) => ({ event: AgentEvents.executionFinished, payload }),
  bytes: (phase: EntryPhase, value: unknown): number => {
    if (phase === 'item') return encodedBytes((value as OutputChunk).data);
    if (phase === 'open') return 200;
    const reason = (value as ExecutionFinished).reason;
    return 300 + (reason ? encodedBytes(reason) : 0);
  },
};
