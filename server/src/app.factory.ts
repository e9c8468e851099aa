import { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { Logger } from 'nestjs-pino';
import { cleanupOpenApiDoc } from 'nestjs-zod';
import { AppModule } from './app.module';
import { ApiExceptionFilter, bodyParserErrorHandler } from './common/exception.filter';
import { json } from 'express';
import { KapitanIoAdapter } from './common/io-adapter';
import { KapitanExpressAdapter } from './common/http-adapter';
import { securityHeaders } from './common/security-headers';
import { AppConfig } from './config/config';
import { assignRequestId } from './common/request-id';
import { ApiValidationPipe } from './common/validation.pipe';

/** The whole app, configured; `main.ts` and the integration tests both start it here. */
export async function createApp(config: AppConfig): Promise<INestApplication> {
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), new KapitanExpressAdapter({ headersTimeoutMs: config.http.headersTimeoutSeconds * 1000 }), {
    bufferLogs: true,
    bodyParser: false,
    // A failed start rejects (main.ts reports it and exits 1; a test sees the error) instead of process.abort().
    abortOnError: false,
  });
  app.useLogger(app.get(Logger));
  app.use(assignRequestId, ...securityHeaders(config.webDir), json({ limit: '1mb' }), bodyParserErrorHandler);
  app.set('trust proxy', config.trustProxy);
  app.disable('x-powered-by');
  app.setGlobalPrefix('api');
  app.useGlobalPipes(new ApiValidationPipe());
  app.useGlobalFilters(new ApiExceptionFilter());
  // No enableShutdownHooks: main.ts handles the signals (drain first, then app.close(), bounded).

  const io = new KapitanIoAdapter(app, config);
  await io.connectRedis();
  app.useWebSocketAdapter(io);

  // Built at the first request for it, not at boot: it is a tenth of the start (agents wait on that in a restart).
  const document = () =>
    cleanupOpenApiDoc(
      SwaggerModule.createDocument(
        app,
        new DocumentBuilder()
          .setTitle('Kapitan API')
          .setDescription('Deployment and supervision of machines you do not control. Errors: { statusCode, code, message, details?, requestId }.')
          .setVersion('0.1.0')
          .addBearerAuth()
          .build(),
      ),
    );
  SwaggerModule.setup('api/docs', app, document, { jsonDocumentUrl: 'api/docs-json' });
  return app;
}
