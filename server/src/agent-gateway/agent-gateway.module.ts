import { Module } from '@nestjs/common';
import { ExecutionsModule } from '../executions/executions.module';
import { MachinesModule } from '../machines/machines.module';
import { AgentGateway } from './agent.gateway';

@Module({ imports: [MachinesModule, ExecutionsModule], providers: [AgentGateway] })
export class AgentGatewayModule {}
