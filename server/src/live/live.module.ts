import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { ExecutionsModule } from '../executions/executions.module';
import { ProjectsModule } from '../projects/projects.module';
import { LiveGateway } from './live.gateway';

@Module({ imports: [AuthModule, ProjectsModule, ExecutionsModule], providers: [LiveGateway] })
export class LiveModule {}
