import { Global, Module } from '@nestjs/common';
import { MachinesModule } from '../machines/machines.module';
import { AgentChannel } from './agent-channel';
import { AgentGateway } from './agent.gateway';

/**
 * The registry of `/agent` handlers. Global and free of imports, so a
 * feature registers with it without importing the gateway's module (which
 * imports machines for credentials and presence).
 */
@Global()
@Module({ providers: [AgentChannel], exports: [AgentChannel] })
export class AgentChannelModule {}

/** The `/agent` gateway: the machine's connection and presence, and the one way in for every agent event. */
@Module({ imports: [MachinesModule], providers: [AgentGateway] })
export class AgentGatewayModule {}
