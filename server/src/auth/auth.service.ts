import { Inject, Injectable } from '@nestjs/common';
import { JwtService } from '@nestjs/jwt';
import { InjectDataSource, InjectRepository } from '@nestjs/typeorm';
import { AuthResponse, LoginRequest, SignupRequest } from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import { DataSource, LessThan, Repository } from 'typeorm';
import { forbidden, unauthenticated } from '../common/api-exception';
import { DomainEventsService } from '../common/events.service';
import { APP_CONFIG, AppConfig } from '../config/config';
import { InstanceSettingsService } from '../invitations/instance-settings.service';
import { InvitationsService } from '../invitations/invitations.service';
import { ProjectInvitationsService } from '../projects/project-invitations.service';
import { toUserDto, UsersService } from '../users/users.service';
import { AuthUser } from './auth-user';
import { LoginThrottleService } from './login-throttle.service';
import { PasswordService } from './password.service';
import { SessionEntity } from './session.entity';

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
    private readonly instance: InstanceSettingsService,
    private readonly invitations: InvitationsService,
    private readonly projectInvitations: ProjectInvitationsService,
    @InjectDataSource() private readonly dataSource: DataSource,
    @InjectRepository(SessionEntity) private readonly sessions: Repository<SessionEntity>,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /**
   * In one transaction: the first account of the instance claims the admin
   * row (exactly one wins, however many race); anyone else needs sign-up to
   * be open or an invitation, which is used up here; then the account, and
   * the project invitations waiting for its e-mail become memberships.
   * A refused sign-up (closed, bad invitation, address taken) counts against
   * the client's address like a failed log-in, so probing which addresses
   * have an account is throttled the same way.
   */
  async signup(body: SignupRequest, ip: string): Promise<AuthResponse> {
    const attempt = await this.throttle.begin([{ key: `signup-ip:${ip}`.slice(0, 300), maxFailures: this.config.signupMaxFailures, backoff: false }], 'refused sign-ups');
    const passwordHash = await this.passwords.hash(body.password);
    let user;
    try {
      user = await this.dataSource.transaction(async (tx) => {
        const id = randomUUID();
        const isAdmin = await this.instance.claimFirstAdmin(tx, id);
        if (!isAdmin) {
          if (body.invitation !== undefined) await this.invitations.redeem(tx, body.invitation, id);
          else if ((await this.instance.signupMode(tx, true)) !== 'open') throw forbidden('sign-up is by invitation only; ask an admin for an invitation link');
        }
        const created = await this.users.createIn(tx, { id, email: body.email, name: body.name, passwordHash, isAdmin });
        await this.projectInvitations.acceptFor(tx, id, body.email);
        return created;
      });
    } catch (err) {
      await this.throttle.failed();
      throw err;
    }
    await this.throttle.succeeded(attempt);
    await this.throttle.rememberAddress(user.email, ip);
    return { user: toUserDto(user), accessToken: await this.startSession(user.id) };
  }

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
    const session = await this.sessions.findOne({ where: { id: payload.sid } });
    if (!session || session.userId !== payload.sub || session.expiresAt.getTime() <= Date.now()) return null;
    const user = await this.users.findById(session.userId);
    if (!user) return null;
    return { userId: user.id, sessionId: session.id, isAdmin: user.isAdmin };
  }

  /** For socket handshakes: the same checks passport-jwt makes for REST. */
  async verifyAccessToken(token: string): Promise<AuthUser | null> {
    try {
      const payload = await this.jwt.verifyAsync<AccessTokenPayload>(token, {
        secret: this.config.jwt.secret,
        algorithms: ['HS256'],
      });
      return await this.resolveSession(payload);
    } catch {
      return null;
    }
  }

  private async startSession(userId: string): Promise<string> {
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
      secret: this.config.jwt.secret,
      algorithm: 'HS256',
      expiresIn: this.config.jwt.ttlSeconds,
    });
  }
}
