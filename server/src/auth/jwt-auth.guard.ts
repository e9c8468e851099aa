import { ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard } from '@nestjs/passport';
import { unauthenticated } from '../common/api-exception';
import { IS_PUBLIC } from './auth-user';

/** Global: every route needs a valid session unless marked `@Public()`. */
@Injectable()
export class JwtAuthGuard extends AuthGuard('jwt') {
  constructor(private readonly reflector: Reflector) {
    super();
  }

  override canActivate(ctx: ExecutionContext) {
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, [ctx.getHandler(), ctx.getClass()])) return true;
    return super.canActivate(ctx);
  }

  override handleRequest<T>(err: unknown, user: T): T {
    // A database failure while resolving the session is not a bad token: let the filter answer 503.
    if (err) throw err instanceof Error ? err : unauthenticated();
    if (!user) throw unauthenticated();
    return user;
  }
}
