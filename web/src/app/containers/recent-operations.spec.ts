import type { ContainerOperation } from '@kapitan/shared';
import { RECENT_OPERATIONS, withCreateAnswer, withRoomState } from './recent-operations';

const op = (id: string, status: ContainerOperation['status'], at = '2026-12-02T10:00:00.000Z'): ContainerOperation => ({
  id,
  projectId: 'p',
  machineId: 'm',
  kind: 'restart',
  containerId: 'c'.repeat(64),
  status,
  error: null,
  spec: null,
  createdBy: null,
  createdAt: at,
  startedAt: status === 'queued' ? null : at,
  finishedAt: status === 'succeeded' || status === 'failed' ? at : null,
  expiresAt: at,
});

describe('recent container operations', () => {
  it('an operation the room already ended before the create answer arrived stays ended', () => {
    const fromRoom = withRoomState(withRoomState([], op('a', 'running')), op('a', 'succeeded'));
    const after = withCreateAnswer(fromRoom, op('a', 'queued'));
    expect(after.map((o) => [o.id, o.status])).toEqual([['a', 'succeeded']]);
  });

  it('an answer first, then the room: the room state replaces it in place at the top', () => {
    const list = withCreateAnswer([op('old', 'succeeded')], op('a', 'queued'));
    expect(list.map((o) => o.id)).toEqual(['a', 'old']);
    const after = withRoomState(list, op('a', 'failed'));
    expect(after.map((o) => [o.id, o.status])).toEqual([
      ['a', 'failed'],
      ['old', 'succeeded'],
    ]);
  });

  it('keeps the newest RECENT_OPERATIONS, and never changes the list it was given', () => {
    const many = Array.from({ length: RECENT_OPERATIONS }, (_, i) => op(`o${i}`, 'succeeded'));
    const frozen = Object.freeze([...many]) as ContainerOperation[];
    expect(withRoomState(frozen, op('new', 'running')).map((o) => o.id)).toEqual(['new', ...many.slice(0, RECENT_OPERATIONS - 1).map((o) => o.id)]);
    expect(withCreateAnswer(frozen, op('new2', 'queued'))).toHaveLength(RECENT_OPERATIONS);
    expect(withCreateAnswer(undefined, op('x', 'queued')).map((o) => o.id)).toEqual(['x']);
  });
});
