import { Inject, Injectable } from '@nestjs/common';
import { JwtService } from '@nestjs/jwt';
import { InjectRepository } from '@nestjs/typeorm';
import { AuthResponse, LoginRequest } from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import { LessThan, Repository } from 'typeorm';
import { unauthenticated } from '../common/api-exception';
import { DomainEventsService } from '../common/events.service';
import { APP_CONFIG, AppConfig } from '../config/config';
import { toUserDto, UsersService } from '../users/users.service';
import { AuthUser } from './auth-user';
import { LoginThrottleService } from './login-throttle.service';
import { PasswordService } from './password.service';
import { SessionEntity } from './session.entity';
import { jwtKey, jwtKeyOption } from './jwt-key';

export interface AccessTokenPayload {
  sub: string;
  sid: string;
  exp?: number;
}

@Injectable()
export class AuthService {
  constructor(
    private readonly users: UsersService,
    private readonly passwords: PasswordService,
    private readonly throttle: LoginThrottleService,
    private readonly jwt: JwtService,
    private readonly events: DomainEventsService,
    @InjectRepository(SessionEntity) private readonly sessions: Repository<SessionEntity>,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async login(body: LoginRequest, ip: string): Promise<AuthResponse> {
    const attempt = await this.throttle.begin(await this.throttle.loginRules(body.email, ip));
    const user = await this.users.findByEmail(body.email);
    const ok = await this.passwords.verify(user?.passwordHash ?? null, body.password);
    if (!user || !ok) {
      await this.throttle.failed();
      // One message for both cases: whether the account exists is not told.
      throw unauthenticated('invalid email or password');
    }
    await this.throttle.loggedIn(attempt, body.email, ip);
    return { user: toUserDto(user), accessToken: await this.startSession(user.id) };
  }

  async logout(auth: AuthUser): Promise<void> {
    await this.sessions.delete({ id: auth.sessionId });
    this.events.publish('session.revoked', { sessionId: auth.sessionId, userId: auth.userId });
  }

  /** The session behind a verified token, or null when logged out, expired or the user is gone. */
  async resolveSession(payload: AccessTokenPayload): Promise<AuthUser | null> {
    if (typeof payload?.sub !== 'string' || typeof payload?.sid !== 'string') return null;
    // The JWT library checks `exp` only when it is there; a token without one would never expire.
    if (typeof payload.exp !== 'number') return null;
    // Side by side: the token names both, and each must check out. One round trip of every request, not two.
    const [session, user] = await Promise.all([this.sessions.findOne({ where: { id: payload.sid } }), this.users.findById(payload.sub)]);
    if (!session || session.userId !== payload.sub || session.expiresAt.getTime() <= Date.now()) return null;
    if (!user) return null; // read by the token's subject, which the session matched above
    return { userId: user.id, sessionId: session.id, isAdmin: user.isAdmin, email: user.email };
  }

  /** For socket handshakes: the same checks passport-jwt makes for REST. */
  async verifyAccessToken(token: string): Promise<AuthUser | null> {
    try {
      const payload = await this.jwt.verifyAsync<AccessTokenPayload>(token, {
        secret: jwtKeyOption(this.config.jwt.secret),
        algorithms: ['HS256'],
      });
      return await this.resolveSession(payload);
    } catch {
      return null;
    }
  }

  /** A new session for `userId` and the access token naming it. */
  async startSession(userId: string): Promise<string> {
    const now = new Date();
    const session = this.sessions.create({
      id: randomUUID(),
      userId,
      createdAt: now,
      expiresAt: new Date(now.getTime() + this.config.jwt.ttlSeconds * 1000),
    });
    await this.sessions.save(session);
    if (Math.random() < 0.05) await this.sessions.delete({ expiresAt: LessThan(now) });
    return this.jwt.signAsync({ sub: userId, sid: session.id } satisfies AccessTokenPayload, {
      privateKey: jwtKey(this.config.jwt.secret),
      algorithm: 'HS256',
      expiresIn: this.config.jwt.ttlSeconds,
    });
  }
}
