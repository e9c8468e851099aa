import { createParamDecorator, ExecutionContext, SetMetadata } from '@nestjs/common';

/** Who is calling: resolved from a valid, unrevoked session. */
export interface AuthUser {
  userId: string;
  sessionId: string;
  isAdmin: boolean;
}

export const IS_PUBLIC = 'kapitan:public';
/** Opt a route out of the global JWT guard. */
export const Public = () => SetMetadata(IS_PUBLIC, true);

export const CurrentUser = createParamDecorator((_: unknown, ctx: ExecutionContext): AuthUser => {
  return ctx.switchToHttp().getRequest<{ user: AuthUser }>().user;
});
