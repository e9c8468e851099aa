import { Inject, Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import { ExtractJwt, Strategy } from 'passport-jwt';
import { unauthenticated } from '../common/api-exception';
import { APP_CONFIG, AppConfig } from '../config/config';
import { AuthUser } from './auth-user';
import { jwtKeyOption } from './jwt-key';
import { AccessTokenPayload, AuthService } from './auth.service';

@Injectable()
export class JwtStrategy extends PassportStrategy(Strategy, 'jwt') {
  constructor(
    private readonly auth: AuthService,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    super({
      jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
      secretOrKey: jwtKeyOption(config.jwt.secret),
      // Only what we sign with: `alg: none` and key-confusion tricks are refused here.
      algorithms: ['HS256'],
      ignoreExpiration: false,
    });
  }

  async validate(payload: AccessTokenPayload): Promise<AuthUser> {
    const user = await this.auth.resolveSession(payload);
    if (!user) throw unauthenticated('session ended; log in again');
    return user;
  }
}
