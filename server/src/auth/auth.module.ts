import { MiddlewareConsumer, Module, NestModule, RequestMethod } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { JwtModule } from '@nestjs/jwt';
import { PassportModule } from '@nestjs/passport';
import { TypeOrmModule } from '@nestjs/typeorm';
import { InvitationsModule } from '../invitations/invitations.module';
import { ProjectsModule } from '../projects/projects.module';
import { TokensModule } from '../tokens/tokens.module';
import { UsersModule } from '../users/users.module';
import { AuthController } from './auth.controller';
import { AuthService } from './auth.service';
import { SignupService } from './signup.service';
import { JwtAuthGuard } from './jwt-auth.guard';
import { JwtStrategy } from './jwt.strategy';
import { LoginThrottleService } from './login-throttle.service';
import { PasswordService } from './password.service';
import { requestPrincipalMiddleware } from '../common/request-principal';
import { KnownLoginAddressEntity, LoginFailureEntity, SessionEntity } from './session.entity';

@Module({
  imports: [
    UsersModule,
    InvitationsModule,
    ProjectsModule,
    TokensModule,
    PassportModule,
    JwtModule.register({}),
    TypeOrmModule.forFeature([SessionEntity, LoginFailureEntity, KnownLoginAddressEntity]),
  ],
  controllers: [AuthController],
  providers: [AuthService, SignupService, PasswordService, LoginThrottleService, JwtStrategy, { provide: APP_GUARD, useClass: JwtAuthGuard }],
  exports: [AuthService],
})
export class AuthModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    // The slot the global guard fills with the caller (see request-principal.ts).
    consumer.apply(requestPrincipalMiddleware).forRoutes({ path: '{*splat}', method: RequestMethod.ALL });
  }
}
