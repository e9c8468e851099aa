import { Inject, Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { InstanceSettings, SignupMode, UpdateInstanceSettingsRequest } from '@kapitan/shared';
import { EntityManager, Repository } from 'typeorm';
import { conflict } from '../common/api-exception';
import { APP_CONFIG, AppConfig } from '../config/config';
import { isUniqueViolation } from '../users/users.service';
import { InstanceSettingEntity } from './invitation.entity';

const SIGNUP_MODE = 'signup_mode';
const FIRST_ADMIN = 'first_admin';

/** Instance-wide settings: who may sign up, and which account was the first. */
@Injectable()
export class InstanceSettingsService {
  constructor(
    @InjectRepository(InstanceSettingEntity) private readonly settings: Repository<InstanceSettingEntity>,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /**
   * KAPITAN_SIGNUP when set; else what an admin chose; else open until the
   * first account exists, then by invitation.
   */
  async get(manager?: EntityManager, firstAdminKnown = false): Promise<InstanceSettings> {
    if (this.config.signupMode) return { signupMode: this.config.signupMode, signupModeSource: 'env' };
    const repo = manager ? manager.getRepository(InstanceSettingEntity) : this.settings;
    const rows = await repo.find();
    const chosen = rows.find((r) => r.name === SIGNUP_MODE)?.value;
    if (chosen === 'open' || chosen === 'invite') return { signupMode: chosen, signupModeSource: 'setting' };
    return { signupMode: firstAdminKnown || rows.some((r) => r.name === FIRST_ADMIN) ? 'invite' : 'open', signupModeSource: 'default' };
  }

  /**
   * `firstAdminKnown`: the caller lost the first-admin claim. Inside its
   * transaction a MySQL snapshot may predate the winner's commit and not
   * show the claim row, so the default must not be read from the table then.
   */
  async signupMode(manager?: EntityManager, firstAdminKnown = false): Promise<SignupMode> {
    return (await this.get(manager, firstAdminKnown)).signupMode;
  }

  async update(body: UpdateInstanceSettingsRequest): Promise<InstanceSettings> {
    if (this.config.signupMode) throw conflict('the sign-up mode is set by KAPITAN_SIGNUP in the environment and cannot be changed here');
    const row = { name: SIGNUP_MODE, value: body.signupMode, updatedAt: new Date() };
    await this.settings.upsert(row, ['name']);
    return this.get();
  }

  /**
   * Claims "first account" for `userId` inside the sign-up's transaction:
   * true for exactly one caller per instance, however many race. The claim
   * is a row under a primary key, so the database decides; it is released
   * again if that sign-up's transaction fails.
   */
  async claimFirstAdmin(manager: EntityManager, userId: string): Promise<boolean> {
    const repo = manager.getRepository(InstanceSettingEntity);
    if (await repo.exists({ where: { name: FIRST_ADMIN } })) return false;
    try {
      await repo.insert({ name: FIRST_ADMIN, value: userId, updatedAt: new Date() });
      return true;
    } catch (err) {
      if (isUniqueViolation(err)) return false;
      throw err;
    }
  }
}
