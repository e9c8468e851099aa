import { isFinalStatus, type ExecutionSummary } from '@kapitan/shared';

/**
 * Whether `incoming` should replace `current`: live updates may arrive late or
 * twice, and an execution that reached a final state never goes back.
 */
export function supersedes(current: ExecutionSummary, incoming: ExecutionSummary): boolean {
  if (isFinalStatus(current.status) && !isFinalStatus(incoming.status)) return false;
  return true;
}

/**
 * Applies a live `execution:updated` to a list (newest first): replaces the row,
 * or adds a new one on top, keeping at most `limit` rows.
 */
export function mergeExecution(
  list: readonly ExecutionSummary[],
  incoming: ExecutionSummary,
  limit = Infinity,
): ExecutionSummary[] {
  const i = list.findIndex((e) => e.id === incoming.id);
  if (i >= 0) {
    if (!supersedes(list[i]!, incoming)) return list as ExecutionSummary[];
    const next = list.slice();
    next[i] = incoming;
    return next;
  }
  const next = [incoming, ...list].sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  return next.length > limit ? next.slice(0, limit) : next;
}
