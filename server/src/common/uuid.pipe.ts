import { PipeTransform } from '@nestjs/common';
import { IdSchema } from '@kapitan/shared';
import { notFound } from './api-exception';

/** A path id that is not a UUID names nothing: 404, the same as an unknown one. */
export class IdParamPipe implements PipeTransform<string, string> {
  constructor(private readonly what = 'resource') {}
  transform(value: string): string {
    const id = IdSchema.safeParse(value);
    if (!id.success) throw notFound(this.what);
    return id.data;
  }
}
