import { Inject, Injectable } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { AuthResponse, SignupRequest } from '@kapitan/shared';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { forbidden } from '../common/api-exception';
import { APP_CONFIG, AppConfig } from '../config/config';
import { InstanceSettingsService } from '../invitations/instance-settings.service';
import { InvitationsService } from '../invitations/invitations.service';
import { ProjectInvitationsService } from '../projects/project-invitations.service';
import { toUserDto, UsersService } from '../users/users.service';
import { AuthService } from './auth.service';
import { LoginThrottleService } from './login-throttle.service';
import { PasswordService } from './password.service';

/** Sign-up: who may, the first admin, invitations, and the memberships waiting for the new account. */
@Injectable()
export class SignupService {
  constructor(
    private readonly users: UsersService,
    private readonly passwords: PasswordService,
    private readonly throttle: LoginThrottleService,
    private readonly sessions: AuthService,
    private readonly instance: InstanceSettingsService,
    private readonly invitations: InvitationsService,
    private readonly projectInvitations: ProjectInvitationsService,
    @InjectDataSource() private readonly dataSource: DataSource,
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
    return { user: toUserDto(user), accessToken: await this.sessions.startSession(user.id) };
  }
}
