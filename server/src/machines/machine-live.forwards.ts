import { Injectable, OnModuleInit } from '@nestjs/common';
import { LiveServerEvents, Rooms } from '@kapitan/shared';
import { LiveChannel } from '../live/live-channel';

/** The machines feature's rows of the domain-event → room table: a machine's changes reach its project's room. */
@Injectable()
export class MachineLiveForwards implements OnModuleInit {
  constructor(private readonly channel: LiveChannel) {}

  onModuleInit(): void {
    this.channel.forward({
      'machine.updated': (e) => ({ rooms: [Rooms.project(e.projectId)], event: LiveServerEvents.machine, payload: e }),
    });
  }
}
