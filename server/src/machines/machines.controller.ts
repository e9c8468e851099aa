import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import {
  CreateEnrolmentTokenRequestSchema,
  EnrolmentToken,
  EnrolRequestSchema,
  EnrolResponse,
  Machine,
  UpdateMachineRequestSchema,
} from '@kapitan/shared';
import { createZodDto } from 'nestjs-zod';
import { AuthUser, CurrentUser, Public } from '../auth/auth-user';
import { IdParamPipe } from '../common/uuid.pipe';
import { EnrolmentTokensService } from './enrolment-tokens.service';
import { EnrolmentService } from './enrolment.service';
import { MachinesService } from './machines.service';
import { Audit } from '../audit/audit.decorator';

function enrolHostname(body: Record<string, unknown>): string | null {
  const h = (body.facts as { hostname?: unknown } | undefined)?.hostname;
  return typeof h === 'string' ? h : null;
}

class CreateEnrolmentTokenDto extends createZodDto(CreateEnrolmentTokenRequestSchema) {}
class UpdateMachineDto extends createZodDto(UpdateMachineRequestSchema) {}
class EnrolDto extends createZodDto(EnrolRequestSchema) {}

const ProjectId = () => Param('projectId', new IdParamPipe('project'));

@ApiTags('machines')
@ApiBearerAuth()
@Controller('projects/:projectId')
export class MachinesController {
  constructor(
    private readonly tokens: EnrolmentTokensService,
    private readonly machines: MachinesService,
  ) {}

  @Get('enrolment-tokens')
  listTokens(@CurrentUser() u: AuthUser, @ProjectId() projectId: string): Promise<EnrolmentToken[]> {
    return this.tokens.listTokens(u.userId, projectId);
  }

  @Audit<EnrolmentToken>('enrolment_token.create', { details: (c) => ({ tokenId: c.result.id, maxUses: c.result.maxUses, expiresAt: c.result.expiresAt }) })
  @Post('enrolment-tokens')
  createToken(@CurrentUser() u: AuthUser, @ProjectId() projectId: string, @Body() body: CreateEnrolmentTokenDto): Promise<EnrolmentToken> {
    return this.tokens.createToken(u.userId, projectId, body);
  }

  @Audit('enrolment_token.revoke', { details: (c) => ({ tokenId: c.params.tokenId }) })
  @Delete('enrolment-tokens/:tokenId')
  @HttpCode(204)
  revokeToken(
    @CurrentUser() u: AuthUser,
    @ProjectId() projectId: string,
    @Param('tokenId', new IdParamPipe('enrolment token')) tokenId: string,
  ): Promise<void> {
    return this.tokens.revokeToken(u.userId, projectId, tokenId);
  }

  @Get('machines')
  list(@CurrentUser() u: AuthUser, @ProjectId() projectId: string): Promise<Machine[]> {
    return this.machines.list(u.userId, projectId);
  }

  @Get('machines/:machineId')
  get(@CurrentUser() u: AuthUser, @ProjectId() projectId: string, @Param('machineId', new IdParamPipe('machine')) id: string): Promise<Machine> {
    return this.machines.get(u.userId, projectId, id);
  }

  @Audit('machine.update', { details: (c) => ({ labels: Object.keys((c.body.labels ?? {}) as object) }) })
  @Patch('machines/:machineId')
  update(
    @CurrentUser() u: AuthUser,
    @ProjectId() projectId: string,
    @Param('machineId', new IdParamPipe('machine')) id: string,
    @Body() body: UpdateMachineDto,
  ): Promise<Machine> {
    return this.machines.update(u.userId, projectId, id, body);
  }

  @Audit('machine.revoke')
  @Delete('machines/:machineId')
  @HttpCode(204)
  revoke(@CurrentUser() u: AuthUser, @ProjectId() projectId: string, @Param('machineId', new IdParamPipe('machine')) id: string): Promise<void> {
    return this.machines.revoke(u.userId, projectId, id);
  }
}

@ApiTags('agent')
@Controller('agent')
export class AgentEnrolController {
  constructor(private readonly enrolment: EnrolmentService) {}

  /** The agent's one unauthenticated call: the enrolment token in the body is the credential. */
  @Public()
  @Audit<EnrolResponse>('machine.enrol', { actor: (c) => ({ machineId: c.result.machineId }), details: (c) => ({ hostname: enrolHostname(c.body) }) })
  @Post('enrol')
  enrol(@Body() body: EnrolDto): Promise<EnrolResponse> {
    return this.enrolment.enrol(body);
  }
}
