import type { ContainerOperation } from '@kapitan/shared';

/** The operations the tab keeps, newest first. */
export const RECENT_OPERATIONS = 20;

/**
 * The project room says how an operation went on: its newest state
 * replaces whatever the list held for it.
 */
export function withRoomState(list: readonly ContainerOperation[] | undefined, o: ContainerOperation): ContainerOperation[] {
  return [o, ...(list ?? []).filter((x) => x.id !== o.id)].slice(0, RECENT_OPERATIONS);
}

/**
 * A create request's answer is the operation as it was created. The room
 * may already have said how it went on (a fast engine ends it before the
 * answer arrives), and that newer state stays.
 */
export function withCreateAnswer(list: readonly ContainerOperation[] | undefined, o: ContainerOperation): ContainerOperation[] {
  const cur = list ?? [];
  return cur.some((x) => x.id === o.id) ? [...cur] : [o, ...cur].slice(0, RECENT_OPERATIONS);
}
