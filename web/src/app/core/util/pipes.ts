import { Pipe, type PipeTransform } from '@angular/core';
import { formatBytes, formatDuration, shortId, timeAgo } from './format';

/** `{{ iso | timeAgo: clock.now() }}`: pure, re-evaluated as the clock ticks. */
@Pipe({ name: 'timeAgo' })
export class TimeAgoPipe implements PipeTransform {
  transform(iso: string | null | undefined, now: number): string {
    return timeAgo(iso, now);
  }
}

@Pipe({ name: 'duration' })
export class DurationPipe implements PipeTransform {
  transform(ms: number | null | undefined): string {
    return formatDuration(ms);
  }
}

@Pipe({ name: 'bytes' })
export class BytesPipe implements PipeTransform {
  transform(n: number | null | undefined): string {
    return formatBytes(n);
  }
}

@Pipe({ name: 'shortId' })
export class ShortIdPipe implements PipeTransform {
  transform(id: string | null | undefined): string {
    return shortId(id);
  }
}
