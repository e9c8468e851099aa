import { Global, Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { ProjectsModule } from '../projects/projects.module';
import { LiveChannel } from './live-channel';
import { LiveGateway } from './live.gateway';

/**
 * The registry of `/live` handlers and forwards. Global and free of imports,
 * so any feature (projects too, which the gateway needs) registers with it
 * without a module cycle.
 */
@Global()
@Module({ providers: [LiveChannel], exports: [LiveChannel] })
export class LiveChannelModule {}

/** The `/live` gateway: the dashboard's connection, membership checks and evictions. */
@Module({ imports: [AuthModule, ProjectsModule], providers: [LiveGateway] })
export class LiveModule {}
