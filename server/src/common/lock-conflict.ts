/**
 * InnoDB picked this statement's transaction as a deadlock victim, or a lock
 * wait timed out: the transaction was rolled back whole, so nothing of it
 * applied and it may be sent again as it was. Returns the error's code then,
 * null for any other error.
 */
export function lockConflict(err: unknown): 'ER_LOCK_DEADLOCK' | 'ER_LOCK_WAIT_TIMEOUT' | null {
  const e = err as { code?: string; driverError?: { code?: string } };
  const code = e?.driverError?.code ?? e?.code;
  return code === 'ER_LOCK_DEADLOCK' || code === 'ER_LOCK_WAIT_TIMEOUT' ? code : null;
}
