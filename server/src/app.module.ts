import { DynamicModule, Module, RequestMethod } from '@nestjs/common';
import { EventEmitterModule } from '@nestjs/event-emitter';
import { ServeStaticModule } from '@nestjs/serve-static';
import { LoggerModule } from 'nestjs-pino';
import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { AuthModule } from './auth/auth.module';
import { CommonModule } from './common/common.module';
import { AppConfig } from './config/config';
import { ConfigModule } from './config/config.module';
import { DatabaseModule } from './database/database.module';
import { HealthModule } from './health/health.module';
import { DrainModule } from './drain/drain.module';
import { ProjectsModule } from './projects/projects.module';
import { MachinesModule } from './machines/machines.module';
import { ExecutionsModule } from './executions/executions.module';
import { AgentChannelModule, AgentGatewayModule } from './agent-channel/agent-channel.module';
import { LiveChannelModule, LiveModule } from './live/live.module';
import { SecretsModule } from './secrets/secrets.module';
import { FilesModule } from './files/files.module';
import { TlsModule } from './tls/tls.module';
import { DeliveriesModule } from './deliveries/deliveries.module';
import { SchedulesModule } from './schedules/schedules.module';
import { ContainersModule } from './containers/containers.module';
import { AuditModule } from './audit/audit.module';
import { BundleModule } from './bundle/bundle.module';
import { redactInstallToken } from './bundle/redact';
import { MetricsModule } from './metrics/metrics.module';

@Module({})
export class AppModule {
  static forRoot(config: AppConfig): DynamicModule {
    const web = existsSync(config.webDir)
      ? [ServeStaticModule.forRoot({ rootPath: config.webDir, exclude: ['/api{/*path}', '/socket.io{/*path}'] })]
      : [];
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        LoggerModule.forRoot({
          // Express 5 route syntax; the default '*' draws a deprecation warning at every start.
          forRoutes: [{ path: '{*splat}', method: RequestMethod.ALL }],
          pinoHttp: {
            level: config.logLevel,
            // assignRequestId ran first; the log line carries the same id as the response.
            genReqId: (req) => (req as { id?: string }).id ?? randomUUID(),
            redact: ['req.headers.authorization', 'req.headers.cookie', 'res.headers["set-cookie"]'],
            // A one-line install URL holds its enrolment token: it never reaches a log.
            serializers: { req: redactInstallToken },
            autoLogging: { ignore: (req) => req.url === '/api/health' || req.url === '/api/health/live' },
            base: { node: config.nodeId },
            // On a terminal, lines a person can read; anywhere else one JSON object per line.
            transport: config.logFormat === 'pretty' ? { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } : undefined,
          },
        }),
        EventEmitterModule.forRoot(),
        CommonModule,
        DrainModule,
        AgentChannelModule,
        LiveChannelModule,
        DatabaseModule,
        AuthModule,
        ProjectsModule,
        MachinesModule,
        ExecutionsModule,
        AgentGatewayModule,
        LiveModule,
        SecretsModule,
        FilesModule,
        DeliveriesModule,
        SchedulesModule,
        ContainersModule,
        AuditModule,
        MetricsModule,
        HealthModule,
        TlsModule,
        BundleModule,
        ...web,
      ],
    };
  }
}
