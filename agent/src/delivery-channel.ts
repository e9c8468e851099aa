/**
 * The deliveries' stream in the outbox: `delivery:progress` updates (only
 * the latest of a batch is sent: each one supersedes the last), then the one
 * `delivery:finished`, keyed by delivery id. Through the outbox so a result
 * reached while the server is away, or the agent restarts, still arrives.
 */
import { AgentEvents, DeliveryFinishedSchema, DeliveryProgressSchema, type DeliveryFinished, type DeliveryProgress } from '@kapitan/shared';
import type { OutboxChannel } from './outbox';

export const deliveryChannel: OutboxChannel<never, DeliveryProgress, DeliveryFinished> = {
  name: 'delivery',
  labels: { open: 'open', item: 'progress', close: 'finished' },
  schemas: { item: DeliveryProgressSchema, close: DeliveryFinishedSchema },
  itemsMessage: (_key, items) => ({ event: AgentEvents.deliveryProgress, payload: items[items.length - 1] }),
  closeMessage: (_key, payload) => ({ event: AgentEvents.deliveryFinished, payload }),
  bytes: (phase, value) => (phase === 'close' ? 300 + Buffer.byteLength((value as DeliveryFinished).reason ?? '', 'utf8') : 120),
};
