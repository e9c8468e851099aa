import { ArgumentMetadata, Injectable, PipeTransform } from '@nestjs/common';
import { ZodValidationPipe } from 'nestjs-zod';
import { isZodDto } from 'nestjs-zod/dto';

/**
 * The global pipe: nestjs-zod's, validating every `createZodDto` argument
 * with its shared schema. One addition: a request with no JSON body at all
 * (none sent, or a content type the JSON parser leaves alone) is validated
 * as `{}`, so the 400 names each missing field (`email: expected string`)
 * instead of one unhelpful `(root): expected object, received undefined`.
 */
@Injectable()
export class ApiValidationPipe implements PipeTransform {
  private readonly zod = new ZodValidationPipe();

  transform(value: unknown, metadata: ArgumentMetadata): unknown {
    const absentBody = metadata.type === 'body' && value === undefined && isZodDto(metadata.metatype);
    return this.zod.transform(absentBody ? {} : value, metadata);
  }
}
