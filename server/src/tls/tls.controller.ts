import { Controller, Get } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import type { InstanceTls } from '@kapitan/shared';
import { TlsService } from './tls.service';

@ApiTags('instance')
@Controller('instance')
export class TlsController {
  constructor(private readonly tls: TlsService) {}

  /** The pins agents hold and the certificate served now; public knowledge, but only for signed-in users, like the rest of the API. */
  @Get('tls')
  info(): InstanceTls {
    return this.tls.info();
  }
}
