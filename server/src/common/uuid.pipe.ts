import { PipeTransform } from '@nestjs/common';
import { IdSchema } from '@kapitan/shared';
import { notFound } from './api-exception';

/** A path id that is not a UUID names nothing: 404, the same as an unknown one. */
export class IdParamPipe implements PipeTransform<string, string> {
  constructor(private readonly what = 'resource') {}
  transform(value: string): string {
    if (!IdSchema.safeParse(value).success) throw notFound(this.what);
    return value.toLowerCase();
  }
}
