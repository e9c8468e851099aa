import { PipeTransform } from '@nestjs/common';
import { SecretNameSchema } from '@kapitan/shared';
import { notFound } from '../common/api-exception';

/** A path name that no secret could have names nothing: 404, the same as an unknown one. */
export class SecretNamePipe implements PipeTransform<string, string> {
  transform(value: string): string {
    if (!SecretNameSchema.safeParse(value).success) throw notFound('secret');
    return value;
  }
}
