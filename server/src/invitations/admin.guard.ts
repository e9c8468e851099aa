import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { forbidden } from '../common/api-exception';
import type { AuthUser } from '../auth/auth-user';

/** Instance administration: the instance admin only (behind the global JWT guard). */
@Injectable()
export class AdminGuard implements CanActivate {
  canActivate(ctx: ExecutionContext): boolean {
    const user = ctx.switchToHttp().getRequest<{ user?: AuthUser }>().user;
    if (!user?.isAdmin) throw forbidden('this needs the instance admin');
    return true;
  }
}
