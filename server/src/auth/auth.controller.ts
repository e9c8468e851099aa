import { Body, Controller, Get, HttpCode, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { AuthResponse, LoginRequestSchema, SignupModeInfo, SignupRequestSchema, User } from '@kapitan/shared';
import type { Request } from 'express';
import { createZodDto } from 'nestjs-zod';
import { notFound } from '../common/api-exception';
import { InstanceSettingsService } from '../invitations/instance-settings.service';
import { toUserDto, UsersService } from '../users/users.service';
import { AuthUser, CurrentUser, Public, SessionOnly } from './auth-user';
import { AuthService } from './auth.service';
import { SignupService } from './signup.service';

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
  @Post('auth/login')
  @HttpCode(200)
  login(@Body() body: LoginDto, @Req() req: Request): Promise<AuthResponse> {
    return this.auth.login(body, req.ip ?? 'unknown');
  }

  @ApiBearerAuth()
  @SessionOnly()
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
