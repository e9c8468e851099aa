/** An in-memory outbox transport: records messages, acks on demand. */
import type { OutboxAckCallback, OutboxMessage, OutboxTransport } from '../outbox';

export interface Sent {
  message: OutboxMessage;
  callback: OutboxAckCallback;
  answered: boolean;
}

export class FakeTransport implements OutboxTransport {
  readonly sent: Sent[] = [];
  /** Answer every message as it is sent (ok), when set. */
  autoAck = false;

  send(message: OutboxMessage, callback: OutboxAckCallback): void {
    const s: Sent = { message, callback, answered: false };
    this.sent.push(s);
    if (this.autoAck) queueMicrotask(() => this.answer(s, null, this.okFor(message)));
  }

  okFor(message: OutboxMessage): unknown {
    return message.event === 'execution:output' ? { ok: true, stored: message.payload.chunks.length } : { ok: true };
  }

  answer(s: Sent, err: Error | null, ack?: unknown): void {
    s.answered = true;
    s.callback(err, ack);
  }

  /** Ack every unanswered message (ok). */
  ackAll(): number {
    let n = 0;
    for (const s of this.sent) {
      if (s.answered) continue;
      this.answer(s, null, this.okFor(s.message));
      n++;
    }
    return n;
  }

  pending(): Sent[] {
    return this.sent.filter((s) => !s.answered);
  }
}

/** Let queued microtasks (the outbox pump) run. */
export const flushMicrotasks = (): Promise<void> => new Promise((r) => setImmediate(r));
