import { Body, Controller, Get, HttpCode, Param, PipeTransform, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import {
  ContainerActionSchema,
  ContainerIdSchema,
  ContainerOperation,
  CreateContainerRequestSchema,
  ErrorCode,
  ListContainerOperationsQuerySchema,
  MachineContainer,
  MachineDockerStatus,
} from '@kapitan/shared';
import { createZodDto } from 'nestjs-zod';
import { z } from 'zod';
import { AuthUser, CurrentUser } from '../auth/auth-user';
import { ApiException } from '../common/api-exception';
import { IdParamPipe } from '../common/uuid.pipe';
import { ZodPipe } from '../common/zod-query.pipe';
import { ContainerOperationsService } from './container-operations.service';
import { ContainerStateService } from './container-state.service';
import { Audit, bodyString } from '../audit/audit.decorator';

class CreateContainerDto extends createZodDto(CreateContainerRequestSchema) {}

/** A path parameter checked by a shared schema; a bad one is a 400 naming the parameter. */
class ParamPipe<S extends z.ZodType> implements PipeTransform<unknown, z.output<S>> {
  constructor(
    private readonly schema: S,
    private readonly name: string,
  ) {}
  transform(value: unknown): z.output<S> {
    const r = this.schema.safeParse(value);
    if (r.success) return r.data;
    const message = r.error.issues[0]?.message ?? 'invalid';
    throw new ApiException(400, ErrorCode.validation, `${this.name}: ${message}`, [{ path: this.name, message }]);
  }
}
const MachineId = () => Param('machineId', new IdParamPipe('machine'));

@ApiTags('containers')
@ApiBearerAuth()
@Controller()
export class ContainersController {
  constructor(
    private readonly state: ContainerStateService,
    private readonly ops: ContainerOperationsService,
  ) {}

  @Get('machines/:machineId/containers')
  list(@CurrentUser() u: AuthUser, @MachineId() machineId: string): Promise<MachineContainer[]> {
    return this.state.list(u.userId, machineId);
  }

  @Get('machines/:machineId/docker')
  docker(@CurrentUser() u: AuthUser, @MachineId() machineId: string): Promise<MachineDockerStatus> {
    return this.state.dockerStatus(u.userId, machineId);
  }

  /** Create a container from an image on the machine and start it; the operation succeeds once it runs (and is healthy). */
  @Audit<ContainerOperation>('container.create', { details: (c) => ({ operationId: c.result.id, image: bodyString(c, 'image'), name: bodyString(c, 'name') }) })
  @Post('machines/:machineId/containers')
  @HttpCode(202)
  create(@CurrentUser() u: AuthUser, @MachineId() machineId: string, @Body() body: CreateContainerDto): Promise<ContainerOperation> {
    return this.ops.create(u.userId, machineId, body);
  }

  @Audit<ContainerOperation>('container.action', { details: (c) => ({ operationId: c.result.id, containerId: c.params.containerId, action: c.params.action }) })
  @Post('machines/:machineId/containers/:containerId/:action')
  @HttpCode(202)
  action(
    @CurrentUser() u: AuthUser,
    @MachineId() machineId: string,
    @Param('containerId', new ParamPipe(ContainerIdSchema, 'containerId')) containerId: string,
    @Param('action', new ParamPipe(ContainerActionSchema, 'action')) action: z.infer<typeof ContainerActionSchema>,
  ): Promise<ContainerOperation> {
    return this.ops.action(u.userId, machineId, containerId, action);
  }

  @Get('machines/:machineId/container-operations')
  operations(
    @CurrentUser() u: AuthUser,
    @MachineId() machineId: string,
    @Query(new ZodPipe(ListContainerOperationsQuerySchema)) q: z.infer<typeof ListContainerOperationsQuerySchema>,
  ): Promise<ContainerOperation[]> {
    return this.ops.list(u.userId, machineId, q.limit);
  }

  @Get('container-operations/:id')
  operation(@CurrentUser() u: AuthUser, @Param('id', new IdParamPipe('container operation')) id: string): Promise<ContainerOperation> {
    return this.ops.get(u.userId, id);
  }
}
