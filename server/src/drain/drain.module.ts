import { Global, Module } from '@nestjs/common';
import { DrainService } from './drain.service';

/** Global and free of imports: the gateways and health register with it without a cycle. */
@Global()
@Module({ providers: [DrainService], exports: [DrainService] })
export class DrainModule {}
