import { Body, Controller, Get, HttpCode, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { AuthResponse, LoginRequestSchema, SignupModeInfo, SignupRequestSchema, User } from '@kapitan/shared';
import type { Request } from 'express';
import { createZodDto } from 'nestjs-zod';
import { ApiException, notFound } from '../common/api-exception';
import { InstanceSettingsService } from '../invitations/instance-settings.service';
import { toUserDto, UsersService } from '../users/users.service';
import { AuthUser, CurrentUser, Public, SessionOnly } from './auth-user';
import { AuthService } from './auth.service';
import { SignupService } from './signup.service';
import { Audit, bodyString } from '../audit/audit.decorator';

/** Why a log-in was refused, for the audit log; null for anything else (bad input, an outage), which records nothing. */
function refusedLogin(err: unknown): 'bad_credentials' | 'throttled' | null {
  if (!(err instanceof ApiException)) return null;
  return err.getStatus() === 401 ? 'bad_credentials' : err.getStatus() === 429 ? 'throttled' : null;
}

class SignupDto extends createZodDto(SignupRequestSchema) {}
class LoginDto extends createZodDto(LoginRequestSchema) {}

@ApiTags('auth')
@Controller()
export class AuthController {
  constructor(
    private readonly auth: AuthService,
    private readonly signups: SignupService,
    private readonly users: UsersService,
    private readonly instance: InstanceSettingsService,
  ) {}

  @Public()
  @Audit<AuthResponse>('auth.signup', { actor: (c) => ({ userId: c.result.user.id }), details: (c) => ({ email: c.result.user.email }) })
  @Post('auth/signup')
  signup(@Body() body: SignupDto, @Req() req: Request): Promise<AuthResponse> {
    return this.signups.signup(body, req.ip ?? 'unknown');
  }

  /** For the sign-up page: whether it needs an invitation. */
  @Public()
  @Get('auth/signup-mode')
  async signupMode(): Promise<SignupModeInfo> {
    return { mode: await this.instance.signupMode() };
  }

  @Public()
  @Audit<AuthResponse>('auth.login', {
    actor: (c) => ({ userId: c.result.user.id }),
    // A refused log-in is itself the event (guessing, stuffing): kept with the address tried and the email named.
    failure: { action: 'auth.login_failed', when: (err) => refusedLogin(err) !== null, details: (c, err) => ({ email: bodyString(c, 'email'), reason: refusedLogin(err) }) },
  })
  @Post('auth/login')
  @HttpCode(200)
  login(@Body() body: LoginDto, @Req() req: Request): Promise<AuthResponse> {
    return this.auth.login(body, req.ip ?? 'unknown');
  }

  @ApiBearerAuth()
  @SessionOnly()
  @Audit('auth.logout')
  @Post('auth/logout')
  @HttpCode(204)
  logout(@CurrentUser() user: AuthUser): Promise<void> {
    return this.auth.logout(user);
  }

  @ApiBearerAuth()
  @Get('me')
  async me(@CurrentUser() auth: AuthUser): Promise<User> {
    const user = await this.users.findById(auth.userId);
    if (!user) throw notFound('user');
    return toUserDto(user);
  }
}
