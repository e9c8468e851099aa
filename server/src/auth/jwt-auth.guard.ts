import { ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard } from '@nestjs/passport';
import type { Request } from 'express';
import { API_TOKEN_PREFIX } from '@kapitan/shared';
import { forbidden, unauthenticated } from '../common/api-exception';
import { ApiTokenAuthService } from '../tokens/api-token-auth.service';
import { AuthUser, IS_PUBLIC, SESSION_ONLY } from './auth-user';
import { setRequestPrincipal } from '../common/request-principal';

const API_TOKEN_BEARER = new RegExp(`^Bearer ${API_TOKEN_PREFIX}_`, 'i');

/**
 * Global: every route needs a valid session (JWT) or API token unless marked
 * `@Public()`. A Bearer value with the API-token prefix is only ever an API
 * token: it never falls through to the JWT check, so a malformed one answers
 * 401 like any bad credential.
 */
@Injectable()
export class JwtAuthGuard extends AuthGuard('jwt') {
  constructor(
    private readonly reflector: Reflector,
    private readonly apiTokens: ApiTokenAuthService,
  ) {
    super();
  }

  override async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const targets = [ctx.getHandler(), ctx.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, targets)) return true;
    const req = ctx.switchToHttp().getRequest<Request & { user?: AuthUser }>();
    const header = req.headers.authorization;
    if (header && API_TOKEN_BEARER.test(header)) {
      const principal = await this.apiTokens.authenticate(header.slice('Bearer '.length));
      if (!principal) throw unauthenticated('API token invalid, expired or revoked');
      req.user = principal;
    } else {
      await super.canActivate(ctx);
    }
    const user = req.user!;
    if (user.apiToken && this.reflector.getAllAndOverride<boolean>(SESSION_ONLY, targets)) {
      throw forbidden('this needs a browser session; API tokens cannot do it');
    }
    setRequestPrincipal(user);
    return true;
  }

  override handleRequest<T>(err: unknown, user: T): T {
    // A database failure while resolving the session is not a bad token: let the filter answer 503.
    if (err) throw err instanceof Error ? err : unauthenticated();
    if (!user) throw unauthenticated();
    return user;
  }
}
