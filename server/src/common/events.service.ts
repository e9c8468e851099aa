import { Injectable, Logger } from '@nestjs/common';
import { EventEmitter2 } from '@nestjs/event-emitter';
import { DomainEventName, DomainEvents } from './domain-events';
import { outsideRequest } from './request-principal';

/**
 * Typed publish and subscribe for domain events: a listener names its event
 * by the `DomainEvents` key, so a renamed event fails to compile instead of
 * silently never firing (as a string `@OnEvent('…')` would).
 */
@Injectable()
export class DomainEventsService {
  private readonly logger = new Logger(DomainEventsService.name);

  constructor(private readonly emitter: EventEmitter2) {}

  publish<K extends DomainEventName>(name: K, payload: DomainEvents[K]): void {
    this.emitter.emit(name, payload);
  }

  /**
   * A listener's failure is logged, never thrown into the publisher (which has
   * already recorded its change); it runs outside the publisher's request.
   */
  on<K extends DomainEventName>(name: K, listener: (payload: DomainEvents[K]) => void | Promise<void>): void {
    this.emitter.on(name, (payload: DomainEvents[K]) => {
      try {
        const r = outsideRequest(() => listener(payload));
        if (r instanceof Promise) r.catch((err: unknown) => this.logger.warn({ err: String(err), event: name }, 'domain event listener failed'));
      } catch (err) {
        this.logger.warn({ err: String(err), event: name }, 'domain event listener failed');
      }
    });
  }
}
