/**
 * Container operations' stream in the outbox, keyed by operation id:
 * `container-operation:started`, then `container-operation:finished`. It has
 * no items. Through the outbox (and its spool) a result reaches the server
 * at least once, even across a server outage or an agent restart.
 */
import {
  AgentEvents,
  ContainerOperationFinishedSchema,
  ContainerOperationStartedSchema,
  type ContainerOperationFinished,
  type ContainerOperationStarted,
} from '@kapitan/shared';
import { z } from 'zod';
import type { OutboxChannel } from '../outbox';

export const containerOperationChannel: OutboxChannel<ContainerOperationStarted, never, ContainerOperationFinished> = {
  name: 'container-operation',
  labels: { open: 'started', item: 'item', close: 'finished' },
  schemas: { open: ContainerOperationStartedSchema, item: z.never(), close: ContainerOperationFinishedSchema },
  openMessage: (_key, payload) => ({ event: AgentEvents.containerOperationStarted, payload }),
  itemsMessage: () => {
    throw new Error('container operations have no items');
  },
  closeMessage: (_key, payload) => ({ event: AgentEvents.containerOperationFinished, payload }),
  bytes: (phase, value) => (phase === 'close' ? 300 + ((value as ContainerOperationFinished).error?.length ?? 0) : 200),
};
