import { ChangeDetectionStrategy, Component, computed, effect, inject, input, signal, untracked } from '@angular/core';
import { rxResource, toSignal } from '@angular/core/rxjs-interop';
import { NonNullableFormBuilder, ReactiveFormsModule, Validators } from '@angular/forms';
import { MatButtonModule } from '@angular/material/button';
import { MatButtonToggleModule } from '@angular/material/button-toggle';
import { MatFormFieldModule } from '@angular/material/form-field';
import { MatIconModule } from '@angular/material/icon';
import { MatInputModule } from '@angular/material/input';
import { MatSelectModule } from '@angular/material/select';
import { MatSlideToggleModule } from '@angular/material/slide-toggle';
import { Router, RouterLink } from '@angular/router';
import {
  LIMITS,
  SCHEDULE_LIMITS,
  type CreateScheduleRequest,
  type MissedRunPolicy,
  type OverlapPolicy,
  type Schedule,
  type UpdateScheduleRequest,
} from '@kapitan/shared';
import { ApiError, applyFieldErrors } from '../core/api/api-error';
import { Notify } from '../core/api/notify.service';
import { formatKeyValueLines } from '../core/util/key-value';
import { EMPTY_RUN_FORM, toCreateExecutionRequest, type RunFormField, type RunFormValue, type TargetMode } from '../executions/run-request';
import { ProjectContext } from '../projects/project-context';
import { SchedulesApi } from './schedules-api';
import { describeCron, inZone, previewFires, viewerZone } from './schedule-timing';

type Kind = 'cron' | 'once';

/** `YYYY-MM-DDTHH:mm` in the viewer's zone, what <input type="datetime-local"> holds. */
function toLocalInput(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/**
 * Create or edit a schedule: its timing (cron with a zone, or once), read
 * back in words and as the next five fire times in the schedule's zone and
 * the viewer's, its policies, and the run it makes (the run form's fields).
 */
@Component({
  selector: 'app-schedule-form-page',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [ReactiveFormsModule, RouterLink, MatFormFieldModule, MatInputModule, MatSelectModule, MatButtonModule, MatButtonToggleModule, MatIconModule, MatSlideToggleModule],
  styleUrl: './schedules.scss',
  template: `
    <div class="page">
      <div class="page-header">
        <h2>{{ scheduleId() ? 'Edit schedule' : 'New schedule' }}</h2>
        <span class="spacer"></span>
        <a matButton [routerLink]="scheduleId() ? ['/projects', ctx.projectId(), 'schedules', scheduleId()] : ['/projects', ctx.projectId(), 'schedules']">Cancel</a>
      </div>
      <form [formGroup]="form" (ngSubmit)="submit()" novalidate data-testid="schedule-form">
        <section class="panel">
          <div class="panel-toolbar"><span class="title">When</span></div>
          <div class="panel-pad">
            <mat-form-field class="full-width">
              <mat-label>Name</mat-label>
              <input matInput formControlName="name" [maxlength]="limits.nameMax" data-testid="schedule-name" />
              @if (error('name'); as e) {
                <mat-error data-testid="error-name">{{ e }}</mat-error>
              }
            </mat-form-field>
            <mat-button-toggle-group formControlName="kind" hideSingleSelectionIndicator data-testid="schedule-kind">
              <mat-button-toggle value="cron">Repeat (cron)</mat-button-toggle>
              <mat-button-toggle value="once">Once</mat-button-toggle>
            </mat-button-toggle-group>
            @if (kind() === 'cron') {
              <div class="form-grid">
                <mat-form-field>
                  <mat-label>Cron expression</mat-label>
                  <input matInput class="mono" formControlName="cron" placeholder="0 3 * * *" data-testid="schedule-cron" />
                  <mat-hint>minute hour day month weekday; a sixth field in front for seconds</mat-hint>
                  @if (error('cron'); as e) {
                    <mat-error data-testid="error-cron">{{ e }}</mat-error>
                  }
                </mat-form-field>
                <mat-form-field>
                  <mat-label>Time zone</mat-label>
                  <input matInput formControlName="timezone" placeholder="UTC" [attr.list]="'tz-list'" data-testid="schedule-timezone" />
                  <datalist id="tz-list">
                    @for (z of zones; track z) {
                      <option [value]="z"></option>
                    }
                  </datalist>
                  @if (error('timezone'); as e) {
                    <mat-error data-testid="error-timezone">{{ e }}</mat-error>
                  }
                </mat-form-field>
              </div>
              <p class="cron-text" data-testid="cron-description">{{ cronText() }}</p>
            } @else {
              <mat-form-field>
                <mat-label>At (your time, {{ viewer }})</mat-label>
                <input matInput type="datetime-local" step="1" formControlName="runAt" data-testid="schedule-run-at" />
                @if (error('runAt'); as e) {
                  <mat-error data-testid="error-runAt">{{ e }}</mat-error>
                }
              </mat-form-field>
            }
            @if (preview().problem; as p) {
              <p class="error-text small" data-testid="preview-problem">{{ p }}</p>
            } @else {
              <div class="fires-grid" data-testid="next-fires">
                <div>
                  <div class="muted small">In the schedule's zone ({{ scheduleZone() }})</div>
                  <ol class="fires">
                    @for (d of preview().times; track d.getTime()) {
                      <li data-testid="next-fire-schedule-zone">{{ show(d, scheduleZone()) }}</li>
                    }
                  </ol>
                </div>
                <div>
                  <div class="muted small">In yours ({{ viewer }})</div>
                  <ol class="fires">
                    @for (d of preview().times; track d.getTime()) {
                      <li data-testid="next-fire-viewer-zone">{{ show(d, viewer) }}</li>
                    }
                  </ol>
                </div>
              </div>
            }
            <div class="form-grid">
              <mat-form-field>
                <mat-label>If the previous one still runs</mat-label>
                <mat-select formControlName="overlapPolicy" data-testid="schedule-overlap">
                  <mat-option value="skip">Skip this one</mat-option>
                  <mat-option value="queue">Queue it</mat-option>
                  <mat-option value="replace">Cancel the previous, run this</mat-option>
                  <mat-option value="allow">Run both</mat-option>
                </mat-select>
              </mat-form-field>
              @if (form.controls.overlapPolicy.value === 'queue') {
                <mat-form-field>
                  <mat-label>At most waiting</mat-label>
                  <input matInput type="number" min="1" [max]="scheduleLimits.queueLimitMax" formControlName="queueLimit" data-testid="schedule-queue-limit" />
                </mat-form-field>
              }
              <mat-form-field>
                <mat-label>Missed while no server was up</mat-label>
                <mat-select formControlName="missedRunPolicy" data-testid="schedule-missed">
                  <mat-option value="skip">Skip (recorded)</mat-option>
                  <mat-option value="run_once">Run once when back</mat-option>
                </mat-select>
              </mat-form-field>
            </div>
            <mat-slide-toggle formControlName="enabled" data-testid="schedule-form-enabled">Active</mat-slide-toggle>
          </div>
        </section>

        <section class="panel">
          <div class="panel-toolbar"><span class="title">What it runs</span></div>
          <div class="panel-pad">
            <mat-form-field class="full-width">
              <mat-label>Script</mat-label>
              <textarea matInput class="code" formControlName="script" rows="8" spellcheck="false" placeholder="#!/bin/sh&#10;echo hello" data-testid="schedule-script"></textarea>
              @if (error('script'); as e) {
                <mat-error data-testid="error-script">{{ e }}</mat-error>
              }
            </mat-form-field>
            <div class="form-grid">
              <mat-form-field>
                <mat-label>Arguments</mat-label>
                <textarea matInput class="code" formControlName="args" rows="3" spellcheck="false"></textarea>
                <mat-hint>One per line</mat-hint>
                @if (error('args'); as e) {
                  <mat-error>{{ e }}</mat-error>
                }
              </mat-form-field>
              <mat-form-field>
                <mat-label>Environment</mat-label>
                <textarea matInput class="code" formControlName="env" rows="3" spellcheck="false"></textarea>
                <mat-hint>NAME=value, one per line</mat-hint>
                @if (error('env'); as e) {
                  <mat-error>{{ e }}</mat-error>
                }
              </mat-form-field>
              <mat-form-field>
                <mat-label>Timeout (s)</mat-label>
                <input matInput type="number" min="1" [max]="limits.timeoutSecondsMax" formControlName="timeoutSeconds" />
              </mat-form-field>
            </div>
            <mat-button-toggle-group formControlName="targetMode" hideSingleSelectionIndicator data-testid="schedule-target-mode">
              <mat-button-toggle value="machines">Machines</mat-button-toggle>
              <mat-button-toggle value="labels">Labels</mat-button-toggle>
              <mat-button-toggle value="all">All</mat-button-toggle>
            </mat-button-toggle-group>
            @switch (form.controls.targetMode.value) {
              @case ('machines') {
                <mat-form-field class="full-width">
                  <mat-label>Machines</mat-label>
                  <mat-select formControlName="machineIds" multiple data-testid="schedule-machines">
                    @for (m of ctx.machines(); track m.id) {
                      <mat-option [value]="m.id" [attr.data-machine-id]="m.id">{{ m.hostname }}</mat-option>
                    }
                  </mat-select>
                  @if (error('machineIds'); as e) {
                    <mat-error data-testid="error-machineIds">{{ e }}</mat-error>
                  }
                </mat-form-field>
              }
              @case ('labels') {
                <mat-form-field class="full-width">
                  <mat-label>Machines with all these labels</mat-label>
                  <textarea matInput class="code" formControlName="labels" rows="2" placeholder="env=prod"></textarea>
                  @if (error('labels'); as e) {
                    <mat-error>{{ e }}</mat-error>
                  }
                </mat-form-field>
              }
              @case ('all') {
                <p class="muted">Every machine of the project when each occurrence fires.</p>
              }
            }
          </div>
        </section>
        @if (formError(); as e) {
          <div class="form-error" role="alert" data-testid="schedule-error"><mat-icon>error_outline</mat-icon>{{ e }}</div>
        }
        <div class="actions-row">
          <button matButton="filled" type="submit" [disabled]="busy() || !ctx.canOperate()" data-testid="schedule-submit">
            <mat-icon>save</mat-icon>{{ scheduleId() ? 'Save' : 'Create schedule' }}
          </button>
        </div>
      </form>
    </div>
  `,
})
export class ScheduleFormPage {
  /** Route param: editing this schedule; absent when creating. */
  readonly scheduleId = input<string>();

  protected readonly ctx = inject(ProjectContext);
  private readonly api = inject(SchedulesApi);
  private readonly notify = inject(Notify);
  private readonly router = inject(Router);
  protected readonly limits = LIMITS;
  protected readonly scheduleLimits = SCHEDULE_LIMITS;
  protected readonly viewer = viewerZone();
  protected readonly zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : ['UTC'];
  protected readonly busy = signal(false);
  protected readonly formError = signal<string | null>(null);

  protected readonly form = inject(NonNullableFormBuilder).group({
    name: ['', [Validators.required, Validators.maxLength(LIMITS.nameMax)]],
    kind: ['cron' as Kind],
    cron: ['0 3 * * *'],
    timezone: [this.viewer],
    runAt: [''],
    overlapPolicy: ['skip' as OverlapPolicy],
    queueLimit: [1, [Validators.min(1), Validators.max(SCHEDULE_LIMITS.queueLimitMax)]],
    missedRunPolicy: ['skip' as MissedRunPolicy],
    enabled: [true],
    script: [''],
    args: [''],
    env: [''],
    secrets: [[] as string[]],
    cwd: [''],
    timeoutSeconds: [null as number | null],
    targetMode: ['all' as TargetMode],
    machineIds: [[] as string[]],
    labels: [''],
  });

  private readonly value = toSignal(this.form.valueChanges, { initialValue: this.form.getRawValue() });
  protected readonly kind = computed(() => this.value().kind ?? 'cron');
  protected readonly scheduleZone = computed(() => (this.kind() === 'cron' ? this.value().timezone || 'UTC' : this.viewer));
  protected readonly cronText = computed(() => describeCron(this.value().cron ?? ''));
  protected readonly preview = computed(() => {
    const v = this.value();
    return previewFires(v.kind ?? 'cron', v.cron ?? '', v.timezone ?? 'UTC', v.runAt ? new Date(v.runAt).toISOString() : '');
  });

  private readonly existing = rxResource({
    params: () => this.scheduleId(),
    stream: ({ params }) => this.api.get(params),
  });

  constructor() {
    effect(() => {
      if (!this.existing.hasValue()) return;
      const s = this.existing.value();
      untracked(() => this.form.reset(this.toForm(s)));
    });
  }

  protected show(d: Date, zone: string): string {
    return inZone(d, zone);
  }

  protected error(field: string): string | null {
    const c = this.form.get(field);
    if (!c) return null;
    if (c.hasError('server')) return c.getError('server') as string;
    if (c.hasError('required')) return 'Required';
    if (c.hasError('maxlength')) return 'Too long';
    return null;
  }

  protected submit(): void {
    this.formError.set(null);
    const v = this.form.getRawValue();
    const run = toCreateExecutionRequest({ ...EMPTY_RUN_FORM, ...v, expiresInSeconds: null } as RunFormValue);
    if (!run.ok) {
      for (const [field, message] of Object.entries(run.errors) as [RunFormField, string][]) {
        const c = this.form.get(field);
        c?.setErrors({ server: message });
        c?.markAsTouched();
      }
      return;
    }
    const timing =
      v.kind === 'cron'
        ? { cron: v.cron.trim(), timezone: v.timezone.trim() || 'UTC', runAt: null }
        : { cron: null, timezone: null, runAt: v.runAt ? new Date(v.runAt).toISOString() : '' };
    const body = {
      name: v.name,
      ...run.request,
      ...timing,
      overlapPolicy: v.overlapPolicy,
      ...(v.overlapPolicy === 'queue' ? { queueLimit: v.queueLimit } : {}),
      missedRunPolicy: v.missedRunPolicy,
      enabled: v.enabled,
    };
    this.busy.set(true);
    const id = this.scheduleId();
    const done = {
      next: (s: Schedule) => {
        this.busy.set(false);
        this.notify.success(id ? 'Schedule saved' : 'Schedule created');
        void this.router.navigate(['/projects', this.ctx.projectId(), 'schedules', s.id]);
      },
      error: (err: unknown) => {
        this.busy.set(false);
        const e = ApiError.from(err);
        const rest = applyFieldErrors(this.form, e.details, { 'targets.machineIds': 'machineIds', 'targets.labels': 'labels', targets: 'targetMode' });
        if (rest.length || !e.details.length) this.formError.set(e.toString());
      },
    };
    if (id) this.api.update(id, body as UpdateScheduleRequest).subscribe(done);
    else {
      // A new schedule sends no nulls: absent is how it says "not this kind".
      const created = Object.fromEntries(Object.entries(body).filter(([, x]) => x !== null)) as CreateScheduleRequest;
      this.api.create(this.ctx.projectId(), created).subscribe(done);
    }
  }

  private toForm(s: Schedule) {
    const t = s.run.targets;
    return {
      name: s.name,
      kind: (s.cron ? 'cron' : 'once') as Kind,
      cron: s.cron ?? '',
      timezone: s.timezone,
      runAt: s.runAt ? toLocalInput(new Date(s.runAt)) : '',
      overlapPolicy: s.overlapPolicy,
      queueLimit: s.queueLimit,
      missedRunPolicy: s.missedRunPolicy,
      enabled: s.enabled,
      script: s.run.script ?? '',
      args: (s.run.args ?? []).join('\n'),
      env: formatKeyValueLines(s.run.env ?? {}),
      secrets: [...(s.run.secrets ?? [])],
      cwd: s.run.cwd ?? '',
      timeoutSeconds: s.run.timeoutSeconds ?? null,
      targetMode: (t.all ? 'all' : t.labels ? 'labels' : 'machines') as TargetMode,
      machineIds: t.machineIds ?? [],
      labels: formatKeyValueLines(t.labels ?? {}),
    };
  }
}
